"""What a call can change that belongs to the interpreter, not to its session, and putting it back after it.

A session keeps its variables from call to call (a notebook), but SymPy's classes and modules, `sys.modules`,
the import hooks, trace functions, signal dispositions and Python's builtins are not variables: a call that
patches `Integer.__add__` or a printer method, sets `global_parameters.evaluate = False`, puts a fake module in
`sys.modules` or ignores SIGALRM would make every later call of its session wrong (or unstoppable). After
each call they are compared with what the zygote had and put back, the sympy cache is cleared if library code
was changed (results computed while patched may be cached), and the reply names what was restored.

Cost: the library classes (~1,600, ~24,000 attributes) take ~5 ms to compare, so they are compared only
after a call whose bytecode could change them (`touches_interpreter`): an attribute assignment, a reflective
builtin (setattr, getattr, vars, exec ...), a dunder name, or an import from outside the usual math modules;
when a function, lambda or class the call defines has such code, every later call of the session is checked.
Module attributes are watched instead: the zygote gives its modules a class whose `__setattr__` notes what a
call replaced, and an audit hook notes a library function's code or defaults changed in place. Module dicts
written directly (`vars(sympy)[...]`) are compared only after a call whose bytecode names a way to hold one
(`DICT_NAMES`, ~4.5 ms), and the library's dicts, lists, sets and objects' attributes (`converter[int] = ...`,
`ZZ.one = ...`) only after a call that names them. A plain SymPy call pays ~45 microseconds
(docs/benchmarks.md).

SymPy and mpmath modules a session imports itself are adopted at the end of the importing call
(`adopt_new_library_modules`): a class that call patched stays patched in that session.

A call reaches `sys` through any module that imported it (`fractions.sys`): the name `sys` in its bytecode makes
it checked, and trace functions, the collector, the working directory and faulthandler are compared after every
call (comparing `sys.modules` too would copy every module object's page into each session). Code compiled while the call runs (`sympify("exec(...)")`) is scanned as it runs, by the audit hook. What putting back replaces is kept alive for the session's life (`InterpreterGuard.kept`), so that no
`__del__` runs inside the restore or after it, where nothing would look again.

Known gaps: a class patched and patched back by a function defined in an earlier call leaves what SymPy cached
meanwhile (the cache is cleared after a call whose own code sets attributes, or when something was put back);
an object whose `__del__` patches, released by the next call's own code (a name it rebinds), patches during
that call, whose result is then wrong (it is put back after it). Garbage in cycles is collected before the
check, so the collector does not run such a `__del__` in the middle of the next call. Also open (docs/sandbox.md):
a module's lazily built table that no warm-up builds, plain-data flags other than the pretty printer's.

Also compared after every call, each for a few microseconds: abstract classes' registries (only when abc's cache
token moved, or after a checked call), `copy`'s and `copyreg`'s dispatch tables, SymPy's singleton registry, the
pretty printer's flag, `warnings.filters`. The bytecode scan reads string constants as names too: a class pattern
(`case object(__dict__=d)`) keeps its attribute names there.

Not a security boundary (sessions are separate processes; nothing here stops a call from writing memory
through ctypes): this keeps an ordinary next call correct after a direct patch.
"""

from __future__ import annotations

import _abc
import _signal
import abc
import array
import builtins
import faulthandler
import functools
import gc
import inspect
import opcode
import os
import re
import resource
import signal
import sys
import types
from dataclasses import dataclass, field
from operator import is_
from typing import Any

_MISSING = object()
_NAMED = frozenset(signal.Signals)
MAX_NAMES = 12

# Imports that cannot reach the interpreter's state by themselves (the math a model writes).
MATH_MODULES = frozenset({
    "sympy", "math", "cmath", "fractions", "decimal", "itertools", "functools", "collections", "statistics",
    "random", "numbers", "numpy", "mpmath", "re", "string", "heapq", "bisect", "operator", "time", "datetime",
    "calendar", "typing", "dataclasses", "enum", "array", "textwrap", "pprint", "json", "copy",
})
REFLECTIVE_NAMES = frozenset({
    "setattr", "delattr", "getattr", "vars", "globals", "locals", "exec", "eval", "compile", "__import__",
    "breakpoint", "__builtins__", "__loader__", "__spec__",
    # library helpers that set attributes on the class they are handed (`dataclass(Integer)`), or hand out any
    # attribute by a dotted name (`string.Formatter().get_field('0.__dict__', [sympy], {})`)
    "dataclass", "update_wrapper", "wraps", "total_ordering", "get_field",
    # what SymPy's cached objects are made of: `x._assumptions[...] = ...` reaches every later `symbols('x')`
    "_assumptions", "default_assumptions", "_mhash", "_args",
})
_CONTAINERS = (dict, list, set, array.array)  # and their subclasses (a class's `default_assumptions`)
# Library containers small enough to copy ahead of every call, since library functions write them without the
# call naming them: `Printer.set_global_settings` / `init_printing`, `global_assumptions`, `polyconfig.setup`.
# `copyreg.pickle(cls, f)` writes the copy and pickle tables without naming them either.
ALWAYS_WATCHED = frozenset({"_global_settings", "global_assumptions", "_current_config",
                            "_copy_dispatch", "_deepcopy_dispatch", "dispatch_table"})
# Standard-library tables that decide what `copy.copy`, `copy.deepcopy` and pickling do with SymPy's objects.
# `re._cache` (compiled patterns, which `Expr.__format__` and the tokenizer of `sympify` use) is a memo: it may grow.
STDLIB_REGISTRIES = {"copy": ("_copy_dispatch", "_deepcopy_dispatch"), "copyreg": ("dispatch_table",),
                     "re": ("_cache",)}
STDLIB_MEMOS = frozenset({("re", "_cache")})
MAX_NESTED_SCAN = 4096  # a bigger table is a memo of values, not of tables
# Plain data that library functions set through `global` and that changes what an ordinary call answers
# (`pretty_use_unicode(False)`): put back after every call, unlike other plain data in a module.
LIBRARY_FLAGS = (("sympy.printing.pretty.pretty_symbology", "_use_unicode"),)
# numpy's error handling and print options live in C or a context variable, set through these functions only
NUMPY_STATE_NAMES = frozenset({"seterr", "seterrcall", "set_printoptions", "printoptions", "errstate",
                               "setbufsize", "set_string_function"})
# Soft limits a call may lower for itself (the sandbox sets each soft limit to its hard one); RLIMIT_CPU is
# moved by the session before each call.
RLIMIT_NAMES = frozenset({"setrlimit", "prlimit"})  # and any checked call (ctypes, a syscall)
KEPT_RLIMITS = (resource.RLIMIT_AS, resource.RLIMIT_DATA, resource.RLIMIT_STACK, resource.RLIMIT_NOFILE,
                resource.RLIMIT_FSIZE, resource.RLIMIT_NPROC)
LIBRARY_PACKAGES = frozenset({"sympy", "mpmath"})  # whose containers decide what a math call answers
_DATA = (bool, int, float, str, bytes, type(None))  # plain data: in a module or mpmath's context, the session's
_NOT_OBJECTS = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, tuple,
                frozenset, *_DATA)
# Names through which code can hold a module's dict itself and write it without setattr (vars(sympy), a function's
# __globals__, a frame's f_globals, the collector's referents): only then are module dicts copied ahead of a call.
DICT_NAMES = frozenset({
    "vars", "__dict__", "__globals__", "f_globals", "getattr", "exec", "eval", "compile", "__import__",
    "get_referents", "get_referrers", "get_objects", "getmembers", "__builtins__", "attrgetter", "methodcaller",
    "__getattribute__", "getattr_static", "get_field",
    "__setattr__", "__delattr__",  # `object.__setattr__(sympy, 'factor', f)` bypasses the module watch
})
# Ways to set an attribute with no attribute store in the bytecode (`object.__setattr__(Integer(7), 'p', 8)`):
# SymPy's cache is cleared after such a call, since a cached object may have been changed in place.
STORE_NAMES = frozenset({"__setattr__", "__delattr__", "__dict__"})
# A class that defines these may make its instances equal to SymPy's keys (a str subclass equal to 'x'): once
# a session has one, SymPy's cache is cleared after each of its calls.
EQUALITY_DUNDERS = frozenset({"__eq__", "__hash__", "__ne__"})
HARMLESS_DUNDERS = frozenset({"__name__", "__doc__", "__qualname__", "__module__", "__init__", "__annotations__"})
# Dunders that make library code set attributes when a class merely defines them (`copy.copy` calls
# `__reduce_ex__` and sets the state it returns on any object): counted in a class body too.
STATE_DUNDERS = frozenset({"__reduce__", "__reduce_ex__", "__setstate__", "__set_name__", "__init_subclass__"})


# What the standard library memoizes on a class (`copyreg._slotnames`, which `copy.copy` asks): a call could
# preset it, and it is made again when asked.
CLASS_MEMOS = frozenset({"__slotnames__"})


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__") and name not in HARMLESS_DUNDERS


_STORE_ATTR = bytes([opcode.opmap["STORE_ATTR"]])
_DELETE_ATTR = bytes([opcode.opmap["DELETE_ATTR"]])
_IMPORT_NAME = opcode.opmap["IMPORT_NAME"]
_EXTENDED_ARG = bytes([opcode.opmap["EXTENDED_ARG"]])


@dataclass
class Reach:
    """What a call's code could do to the interpreter's state, read from its bytecode (a few microseconds;
    walking its syntax tree took ~80)."""

    now: bool = False  # while it runs
    later: bool = False  # through a function, lambda or class it defines, whenever that is called
    stores: bool = False  # sets attributes: a class patched and patched back leaves its results in SymPy's cache
    dicts_now: bool = False  # may write a module's dict directly (DICT_NAMES), while it runs
    dicts_later: bool = False  # ... through a function, lambda or class it defines
    names_now: set[str] = field(default_factory=set)  # the names its code uses (a library container is one)
    names_later: set[str] = field(default_factory=set)  # ... and the code of what it defines
    lies = False  # defines a class with its own equality or hash: its instances may key SymPy's caches


def _constant_names(consts: tuple[Any, ...]) -> set[str]:
    found = set()
    for const in consts:
        if type(const) is str and const.isidentifier():
            found.add(const)
        elif type(const) in (tuple, frozenset):
            found |= _constant_names(tuple(const))
    return found


def touches_interpreter(*codes: types.CodeType | None) -> Reach:
    reach = Reach()
    for code in codes:
        if code is not None:
            _scan(code, reach, nested=False)
    return reach


def _scan(code: types.CodeType, reach: Reach, nested: bool) -> None:
    ops = code.co_code[::2]  # 3.11+: two bytes per instruction (and per inline cache entry, opcode 0)
    stores = _STORE_ATTR in ops or _DELETE_ATTR in ops
    # A name may also be a constant: a string handed to getattr (folded: `'_li' + 'st'`), a subscript
    # (`g['_sympy_converter']`), or the attribute names of a class pattern (`case object(__dict__=d)`).
    names = frozenset(code.co_names).union(_constant_names(code.co_consts))
    (reach.names_later if nested else reach.names_now).update(names)
    touches = stores or not REFLECTIVE_NAMES.isdisjoint(names) or _EXTENDED_ARG in ops
    class_body = not code.co_flags & inspect.CO_OPTIMIZED and nested
    if not touches and not class_body:  # a class body names its own
        touches = any(_dunder(name) for name in names)
    touches = touches or not STATE_DUNDERS.isdisjoint(names) or "sys" in names  # `fractions.sys.modules[...]`
    start = ops.find(_IMPORT_NAME)
    while not touches and start >= 0:
        touches = code.co_names[code.co_code[2 * start + 1]].split(".")[0] not in MATH_MODULES
        start = ops.find(_IMPORT_NAME, start + 1)
    if touches:
        reach.now = reach.now or not nested
        reach.later = reach.later or nested
        reach.stores = reach.stores or stores or not (REFLECTIVE_NAMES | STORE_NAMES).isdisjoint(names)
    if class_body and not EQUALITY_DUNDERS.isdisjoint(names):
        reach.lies = True
    if not DICT_NAMES.isdisjoint(names):  # even without a store: `attrgetter(name)(cls)[key] = ...` has none
        reach.dicts_now = reach.dicts_now or not nested
        reach.dicts_later = reach.dicts_later or nested
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _scan(const, reach, nested=True)


class _WatchedModule(types.ModuleType):
    """The class the zygote gives its modules: `module.name = x` and `del module.name` during a call are noted,
    so that a replaced or deleted attribute is put back after it without comparing every module each call."""

    def __setattr__(self, name: str, value: Any) -> None:
        _note_module_change(self, name)
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        _note_module_change(self, name)
        super().__delattr__(name)


_recording = False
_module_changes: dict[tuple[int, str], tuple[types.ModuleType, str, Any]] = {}
# Set by the import system on a module it (re)initialises, and the sys hooks the session resets or never uses.
UNWATCHED_MODULE_ATTRIBUTES = frozenset({
    "__loader__", "__package__", "__spec__", "__file__", "__cached__", "__path__",
    "stdout", "stderr", "stdin", "displayhook", "excepthook", "ps1", "ps2", "last_type", "last_value",
    "last_traceback",
})


def _note_module_change(module: types.ModuleType, name: str) -> None:
    if _recording and name not in UNWATCHED_MODULE_ATTRIBUTES and (id(module), name) not in _module_changes:
        _module_changes[(id(module), name)] = (module, name, module.__dict__.get(name, _MISSING))


# A library function's code and defaults are changed in place (`solve.__code__ = ...`), which neither the module
# watch nor the class comparison sees; CPython raises an audit event for each such access, so one audit hook,
# installed in the zygote, notes what the function had before. Reading `__kwdefaults__` or `__globals__` hands
# out a dict that can then be changed in place: a copy of it is noted on the read.
_function_changes: dict[tuple[int, str], tuple[Any, str, Any, dict | None]] = {}
_library_functions: frozenset[int] = frozenset()
_FUNCTION_SETS = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
_FUNCTION_READS = frozenset({"__kwdefaults__", "__globals__"})
_in_audit_hook = False
_runtime_reach = Reach()  # what code compiled and run during the call could do (the audit hook's "exec" events)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """The zygote's audit hook. It also refuses later audit hooks (CPython drops a hook that a RuntimeError
    from an earlier one refuses): one added by a call would run inside every later call of its session."""
    global _in_audit_hook
    if event == "sys.addaudithook":
        raise RuntimeError("a sandbox session cannot add audit hooks")
    if event == "exec" and _recording and not _in_audit_hook and type(args[0]) is types.CodeType:
        filename = args[0].co_filename  # a module being imported runs code from its file: that is the library
        if filename.startswith("<") and not filename.startswith("<cell "):  # `sympify("exec(...)")`, an annotation
            _scan(args[0], _runtime_reach, nested=False)
        return
    if not _recording or _in_audit_hook or (event != "object.__setattr__" and event != "object.__getattr__"):
        return
    function, name = args[0], args[1]
    if (type(function) is not types.FunctionType
            or name not in (_FUNCTION_SETS if event == "object.__setattr__" else _FUNCTION_READS)
            or (id(function), name) in _function_changes):
        return
    if id(function) not in _library_functions and str(function.__module__).split(".")[0] not in LIBRARY_PACKAGES:
        return  # the session's own function (a library one the call imported itself is the library's)
    _in_audit_hook = True  # reading the attribute below raises the event again
    try:
        value = getattr(function, name)
    finally:
        _in_audit_hook = False
    _function_changes[(id(function), name)] = (function, name, value, dict(value) if type(value) is dict else None)


def _sympy_parameters() -> Any:
    module = sys.modules.get("sympy.core.parameters")
    return getattr(module, "global_parameters", None)


class InterpreterSnapshot:
    """Taken once in the zygote after its imports and warm-up: every session forked from it inherits it."""

    PARAMETERS = ("evaluate", "distribute", "exp_is_pow")

    def __init__(self) -> None:
        self.builtins = dict(builtins.__dict__)
        # the sandbox's own modules are not the interpreter's to put back: sessions drop them (`hide_sandbox_modules`)
        self.module_names = tuple(name for name in sys.modules if not _is_sandbox_module(name))
        self.module_values = tuple(map(sys.modules.__getitem__, self.module_names))
        self.meta_path = list(sys.meta_path)
        self.path_hooks = list(sys.path_hooks)
        _install_pending_singletons()
        objects = gc.get_objects()
        self.types = [(cls, dict(cls.__dict__)) for cls in objects
                      if isinstance(cls, type) and cls.__flags__ & (1 << 9)]  # heap types: the others are immutable
        self.gc_callbacks = list(gc.callbacks)
        self.containers = _library_containers(self.module_values, self.types)
        self.container_names = frozenset(self.containers)
        # the objects library modules hold keep their class (`ZZ.__class__ = ...`); their attribute dicts are
        # watched after any call that stores an attribute (`Poly(...).domain.to_sympy = ...` never names ZZ)
        holders = {id(holder): holder for found in self.containers.values() for _, _, holder in found
                   if holder is not None and holder is not _GROWS}
        self.instance_classes = [(holder, type(holder)) for holder in holders.values()]
        self.object_dicts = [c for found in self.containers.values() for c in found
                             if c[2] is not None and c[2] is not _GROWS]
        global _library_functions, _library_caches
        _library_functions = frozenset(id(function) for function in objects if type(function) is types.FunctionType)
        _library_caches = [cache for cache in objects if type(cache) is functools._lru_cache_wrapper
                           and str(getattr(cache, "__module__", "")).split(".")[0] in LIBRARY_PACKAGES]
        # SymPy's singletons (S.One, S.Half ...), by the class each must keep: `S.Half.__class__ = ...` is no store
        # into a class's dict
        self.singletons = [(attributes["_instance"], cls) for cls, attributes in self.types
                           if "_instance" in attributes and type(cls).__name__ == "Singleton"]
        self.singleton_args = [(instance, instance._args) for instance, _ in self.singletons]  # `S.Pi._args = ...`
        # the registry's class holds every singleton by name: a new singleton class of the same name removes it
        registry = type(getattr(sys.modules.get("sympy.core.singleton"), "S", None))
        self.singleton_names = [(cls, saved) for cls, saved in self.types if cls is registry]
        # abstract classes' registries: `numbers.Integral.register(float)` changes every later isinstance test
        self.abc_registries = [(cls, _registered(cls)) for cls in objects if isinstance(cls, abc.ABCMeta)]
        # a class a session creates may be registered (`import decimal` registers Decimal as a Number); one that
        # was here may not: `numbers.Integral.register(float)`
        self.zygote_classes = _every_class()
        self.abc_token = _abc.get_cache_token()
        self.constant_memos = [(memo, memo.memo_prec, memo.memo_val) for memo in _constant_memos(objects)]
        del objects
        self.known_modules = frozenset(sys.modules)  # the sandbox's own too: they are never imported again
        self.sandbox_module_names = tuple(name for name in sys.modules if _is_sandbox_module(name))
        self.module_count = len(sys.modules)  # what a session has (fewer, `hide_sandbox_modules`): it imported none
        sys.addaudithook(_audit)
        parameters = _sympy_parameters()
        self.parameters = {name: getattr(parameters, name) for name in self.PARAMETERS} if parameters else {}
        self.int_max_str_digits = sys.get_int_max_str_digits()
        self.flags = [(module, name, module.__dict__[name]) for module_name, name in LIBRARY_FLAGS
                      if name in getattr(module := sys.modules.get(module_name), "__dict__", {})]
        numpy = sys.modules.get("numpy")
        self.numpy_state = (numpy, numpy.geterr(), numpy.geterrcall(), numpy.get_printoptions()) \
            if hasattr(numpy, "geterr") else None
        warnings = sys.modules.get("warnings")
        self.warning_filters = (warnings, list(warnings.filters)) if warnings is not None else None
        self.path = list(sys.path)
        self.path_importer_cache = dict(sys.path_importer_cache)
        self.package_paths = [(module.__path__, list(module.__path__)) for module in self.module_values
                              if type(module.__dict__.get("__path__")) is list
                              and module.__name__.split(".")[0] in LIBRARY_PACKAGES]
        for module in self.module_values:
            if type(module) is types.ModuleType:
                module.__class__ = _WatchedModule


_TOOLKIT_MODULES = frozenset({"tool_sandbox", "tool_sandbox.sympy_toolkit"})  # tool calls import the toolkit by name


def _is_sandbox_module(name: str) -> bool:
    return name.startswith("tool_sandbox.") and name not in _TOOLKIT_MODULES


def hide_sandbox_modules(snapshot: InterpreterSnapshot) -> None:
    """In a session process: `sys.modules['tool_sandbox.interpreter_state'].InterpreterGuard.after = ...` would switch
    the guard off in one line. The session keeps the modules it runs on; a call finds them only by walking objects
    (not a boundary: see the module docstring), and cannot import them again (the project is not mounted)."""
    package = sys.modules.get("tool_sandbox")
    for name in snapshot.sandbox_module_names:  # named in the zygote: walking sys.modules here copies its keys' pages
        if sys.modules.pop(name, None) is None:
            continue
        if package is not None:
            package.__dict__.pop(name.rpartition(".")[2], None)
    snapshot.module_count = len(sys.modules)  # not a new frozenset: its references would copy ~1,500 keys' pages


def _library_containers(modules: tuple[Any, ...],
                        classes: list[tuple[type, dict[str, Any]]]) -> dict[str, list[tuple[Any, str, Any]]]:
    """What a call can change in place once it names it, by that name: the dicts, lists and sets that library
    modules and classes hold (`sympify.converter`, a printer's `_default_settings`), and the attribute dicts
    of the objects library modules hold (`ZZ.one = ...`), each with that object (None for a container)."""
    found: dict[str, list[tuple[Any, str, Any]]] = {}
    seen: set[tuple[int, str]] = set()
    owners = [(module.__name__, module.__dict__, True) for module in modules
              if issubclass(type(module), types.ModuleType) and module.__name__.split(".")[0] in LIBRARY_PACKAGES]
    owners += [(f"{cls.__module__}.{cls.__qualname__}", attributes, False) for cls, attributes in classes
               if str(cls.__module__).split(".")[0] in LIBRARY_PACKAGES]
    owners += [(module.__name__, {name: module.__dict__[name] for name in STDLIB_REGISTRIES[module.__name__]
                                  if name in module.__dict__}, True)
               for module in modules if getattr(module, "__name__", None) in STDLIB_REGISTRIES]
    for owner, attributes, is_module in owners:
        for name, value in attributes.items():
            if name.startswith("__") and name.endswith("__") and name != "__all__":  # `from sympy import *` reads it
                continue
            if isinstance(value, _CONTAINERS):
                held = [(value, f"{owner}.{name}", _GROWS if (owner, name) in STDLIB_MEMOS else None)]
                # a table inside a table goes by its key too (`LatexPrinter._default_settings['symbol_names']`)
                held += [(inner, f"{owner}.{name}[{key!r}]", None) for key, inner in _nested(value)
                         if type(key) is str and key.isidentifier()]
            elif type(value) is types.FunctionType or type(value) in (staticmethod, classmethod):
                held = _function_containers(getattr(value, "__func__", value), f"{owner}.{name}")
            elif is_module and not isinstance(value, _NOT_OBJECTS) and type(vars_of := getattr(value, "__dict__", None)) is dict:
                held = [(vars_of, f"{owner}.{name}", value)]  # and what its attributes hold (`sieve._list`)
                held += [(inner, f"{owner}.{name}.{key}", _GROWS) for key, inner in vars_of.items()
                         if isinstance(inner, _CONTAINERS) and not _is_mpmath_context(value)]  # mp's are the session's
            elif not isinstance(value, _NOT_OBJECTS):  # slots: a dispatcher's `funcs` (`union_sets`, `Q.positive.handler`)
                held = [(inner, f"{owner}.{name}.{slot}", _GROWS) for slot, inner in _slot_values(value)
                        if isinstance(inner, _CONTAINERS)]
                if held and "funcs" in dict(_slot_values(value)) and callable(getattr(type(value), "reorder", None)):
                    _DISPATCHERS[id(value.funcs)] = value
            else:
                continue
            for container, label, holder in held:
                # a private container inside an object goes by its own name too (`sieve._list`, a dispatcher's
                # `_cache`), and a table inside a table by its key; a public attribute (`funcs`) would be watched
                # whenever a call has a variable of that name
                inner = re.split(r"[.\[]", label)[-1].strip("]'\"")
                own_name = (holder is _GROWS and inner.startswith("_")) or (label.endswith("]") and inner != name)
                for key in (name, inner) if own_name else (name,):
                    if (id(container), key) not in seen:  # one container may go by several names (an alias)
                        seen.add((id(container), key))
                        found.setdefault(key, []).append((container, label, holder))
    return found


def _install_pending_singletons() -> None:
    """SymPy makes a singleton when first asked for (`S.BooleanTrue`); made in the zygote, every one is in the
    registry's class dict, which is compared after each call: a class of the same name that a call defines
    (`class Half(RationalConstant, metaclass=Singleton)`) removes it from there to take its place."""
    registry = getattr(sys.modules.get("sympy.core.singleton"), "S", None)
    for name in list(getattr(registry, "_classes_to_install", ())):
        getattr(registry, name)


def _registered(cls: abc.ABCMeta) -> frozenset[type]:
    return frozenset(member for ref in _abc._get_dump(cls)[0] if (member := ref()) is not None)


def _every_class() -> frozenset[int]:
    """The ids of every class there is, the builtin ones (`float`) too, which the collector does not track."""
    seen: set[int] = set()
    todo: list[type] = [object]
    while todo:
        cls = todo.pop()
        if id(cls) not in seen:
            seen.add(id(cls))
            todo += type.__subclasses__(cls)
    return frozenset(seen)


def _constant_memos(objects: list[Any]) -> list[Any]:
    """mpmath's memos of constants (pi, e, log 2 ... to the precision last asked): each one the function inside a
    `constant_memo` closure, reachable only through that closure cell."""
    memos = {}
    for function in objects:
        if type(function) is types.FunctionType and str(function.__module__).split(".")[0] in LIBRARY_PACKAGES:
            for inner in _closure_values(function):
                if type(inner) is types.FunctionType and {"memo_prec", "memo_val"} <= inner.__dict__.keys():
                    memos[id(inner)] = inner
    return list(memos.values())


def _closure_values(function: types.FunctionType) -> list[Any]:
    """What a function's closure cells hold (an empty cell, not yet bound, holds nothing)."""
    values = (_try(getattr, cell, "cell_contents") for cell in function.__closure__ or ())
    return [inner for inner in values if inner is not _FAILED]


def _nested(container: Any) -> list[tuple[Any, Any]]:
    """The containers a dict's values or a list's items hold, also inside a tuple (`MODULES['numpy'][0]`)."""
    if len(container) > MAX_NESTED_SCAN:
        return []
    items = list(dict.items(container)) if isinstance(container, dict) else \
        list(enumerate(container)) if isinstance(container, list) else []
    found = []
    for key, value in items:
        if isinstance(value, _CONTAINERS):
            found.append((key, value))
        elif type(value) is tuple:
            found += [(key, inner) for inner in value if isinstance(inner, _CONTAINERS)]
    return found


def _function_containers(function: types.FunctionType, label: str) -> list[tuple[Any, str, Any]]:
    """A library function's mutable defaults (`solve_linear(exclude=[])`: an item appended is in every later call),
    and what its closure cells hold (`recurrence_memo`'s list: a memo that grows, but whose entries stay)."""
    defaults = [*(function.__defaults__ or ()), *(function.__kwdefaults__ or {}).values()]
    held = [(value, f"{label}.__defaults__", None) for value in defaults if isinstance(value, _CONTAINERS)]
    return held + [(inner, f"{label}.__closure__", _GROWS) for inner in _closure_values(function)
                   if isinstance(inner, _CONTAINERS)]


def _slot_values(value: Any) -> list[tuple[str, Any]]:
    slots = [slot for klass in type(value).__mro__ for slot in getattr(klass, "__slots__", ())
             if isinstance(slot, str)]
    return [(slot, inner) for slot in slots if (inner := getattr(value, slot, _MISSING)) is not _MISSING]


_DISPATCHERS: dict[int, Any] = {}  # a dispatcher by the id of its `funcs`: its order is made again after a restore
_GROWS = object()  # the holder of a container that an object's methods extend (`sieve.extend`): only what was
# there before the call must stay as it was
_NAMED_MEMO = object()  # ... one the call named by its private name: put back whole, growth too (silently)


def _copy(container: Any) -> Any:
    """A plain copy (a subclass's own `copy` may be missing or return something else)."""
    if isinstance(container, dict):
        return dict(container)
    if isinstance(container, set):
        return set(container)
    return container[:] if isinstance(container, array.array) else list(container)


def _safe_repr(key: Any) -> str:
    """A key as the notice names it: user code's `__repr__` must not run while the guard puts things back."""
    return repr(key) if type(key) in _DATA else f"<{type(key).__name__} key>"


def _shadows(holder: Any, name: str) -> bool:
    """Whether an attribute set on `holder` hides one its class has (`ZZ.dtype = float`); one that does not is a
    value the object memoized for itself (SymPy's `Q` keeps `_positive` once asked)."""
    return any(name in klass.__dict__ for klass in type(holder).__mro__)


def _is_mpmath_context(value: Any) -> bool:
    base = getattr(sys.modules.get("mpmath.ctx_base"), "Context", None)
    return base is not None and isinstance(value, base)


def adopt_new_library_modules(snapshot: InterpreterSnapshot) -> None:
    """SymPy and mpmath modules a session imported itself (`sympy.stats`, `sympy.physics.units`) are watched
    like the zygote's from the end of the call that imported them on: their attributes, classes and
    containers, as that call left them (their functions the audit hook counts as the library's by their
    module). Runs in the session process, on its own copy of the snapshot."""
    new = [(name, module) for name, module in list(sys.modules.items())
           if name not in snapshot.known_modules and issubclass(type(module), types.ModuleType)]
    snapshot.known_modules = snapshot.known_modules.union(name for name, _ in new)
    snapshot.module_count = len(sys.modules)
    new = [(name, module) for name, module in new if name.split(".")[0] in LIBRARY_PACKAGES]
    if not new:
        return
    types_ = []
    for name, module in new:
        if type(module) is types.ModuleType:
            module.__class__ = _WatchedModule
        types_ += [(value, dict(value.__dict__)) for value in list(vars(module).values())
                   if isinstance(value, type) and value.__flags__ & (1 << 9) and value.__module__ == name]
    snapshot.types = snapshot.types + types_
    snapshot.module_names = snapshot.module_names + tuple(name for name, _ in new)
    snapshot.module_values = snapshot.module_values + tuple(module for _, module in new)
    for name, found in _library_containers(tuple(module for _, module in new), types_).items():
        snapshot.containers[name] = snapshot.containers.get(name, []) + found
    snapshot.container_names = frozenset(snapshot.containers)


class InterpreterGuard:
    """One per session process: `before(tree)` ahead of each call, `after()` once it returned."""

    ITIMERS = (signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)

    def __init__(self, snapshot: InterpreterSnapshot) -> None:
        """After the session set its own signal handlers: those are the ones to keep."""
        self.snapshot = snapshot
        # _signal's getsignal: the raw handler, without the enum conversion that made this loop cost 0.3 ms
        self.signals = {sig: handler for sig in _signal.valid_signals()
                        if sig not in (signal.SIGKILL, signal.SIGSTOP) and (handler := _signal.getsignal(sig)) is not None}
        self.signal_mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
        self.cwd = os.getcwd()
        self.checked_from_now_on = False
        self.dicts_from_now_on = False
        self.lies_from_now_on = False
        self.check_this_call = False
        self.clear_cache_after = False
        self.module_dicts: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.names_from_now_on: set[str] = set()
        self.containers: list[tuple[Any, str, Any, Any]] = []
        # What putting back replaces is kept alive for the session's life: a `__del__` (a signal handler's, a
        # patched attribute's) would otherwise run inside the restore, or after it, and patch again unseen.
        self.kept: list[Any] = []
        self.always_watched = [c for name in ALWAYS_WATCHED for c in snapshot.containers.get(name, [])]
        self.abc_token = snapshot.abc_token
        self.rlimits: dict[int, int] | None = None  # read before the first call: the limits are set after this
        self.numpy_named = self.rlimits_named = False

    def before(self, *codes: types.CodeType | None) -> None:
        """Ahead of a call, with its compiled code."""
        global _recording
        if self.rlimits is None:
            self.rlimits = {limit: resource.getrlimit(limit)[0] for limit in KEPT_RLIMITS}
        reach = touches_interpreter(*codes)
        self.checked_from_now_on |= reach.later
        self.check_this_call = reach.now or self.checked_from_now_on
        self.dicts_from_now_on |= reach.dicts_later
        # what the modules' dicts hold now, to see what the call writes into them directly (~2 ms, and ~3 to
        # compare): this call's writes only, since threading rebinds its locks after the fork
        copy_dicts = reach.dicts_now or self.dicts_from_now_on
        self.module_dicts = [(module.__dict__, dict(module.__dict__)) for module in list(sys.modules.values())
                             if issubclass(type(module), types.ModuleType)] if copy_dicts else []
        self.names_from_now_on |= reach.names_later
        names = reach.names_now | self.names_from_now_on
        named = names & self.snapshot.container_names
        named_containers = [c for name in named for c in self.snapshot.containers[name]]
        # and one level inside them: `_assume_rules.full_implications[key].add(...)` changes a set a dict holds
        # (tables and memos: what an object's own attributes hold is watched as a memo of its own, and an mpmath
        # context's working precision, `mp._prec_rounding`, is the session's)
        inside = [(inner, f"{label}[{_safe_repr(key)}]", None) for container, label, holder in named_containers
                  if holder is None or holder is _GROWS for key, inner in _nested(container)]
        named_containers += self.always_watched
        watched = inside + ([c for found in self.snapshot.containers.values() for c in found] if copy_dicts else
                            named_containers + (self.snapshot.object_dicts if reach.stores or self.checked_from_now_on
                                                else []))
        watched = list({id(c[0]): c for c in watched}.values()) if len(watched) > 1 else watched
        # what an object's methods grow (a memo) must stay whole if the call named that private attribute: an
        # entry it added there (`sieve._list.extend([15])`, `union_sets._cache[...] = f`) would answer later calls
        # (or that it held: `_reals_cache._dict`, `bell._bell.__closure__`), and after a checked call
        whole = {id(c[0]) for name in named for c in self.snapshot.containers[name] if c[2] is _GROWS
                 and (self.check_this_call or name.startswith("_") and (c[1].endswith("." + name) or f".{name}." in c[1]))}
        self.containers = [(container, label, _NAMED_MEMO if id(container) in whole else holder, _copy(container))
                           for container, label, holder in watched]
        self.lies_from_now_on |= reach.lies
        self.numpy_named = not NUMPY_STATE_NAMES.isdisjoint(names)
        self.rlimits_named = not RLIMIT_NAMES.isdisjoint(names)
        self.clear_cache_after = reach.stores or self.lies_from_now_on
        _module_changes.clear()
        _function_changes.clear()
        _runtime_reach.__init__()
        _recording = True

    def after(self) -> list[str]:
        """Put back what the call changed; the names of what was put back (at most `MAX_NAMES`, then a count)."""
        global _recording
        if self.check_this_call:  # a `__del__` of garbage in a cycle would patch in the middle of the next call
            gc.collect()
        self._count_code_made_at_run_time()
        restored: list[str] = []
        # Recording stays on: putting back can run the call's code (a key's __hash__, a released object's __del__,
        # a property); what that code patches is put back by one more pass, which then compares everything.
        for _ in range(RESTORE_PASSES):
            module_changes, function_changes = list(_module_changes.values()), list(_function_changes.values())
            _module_changes.clear()
            _function_changes.clear()
            found = (self._builtins() + self._module_attributes(module_changes) + self._sympy_parameters()
                     + self._functions(function_changes) + self._containers() + self._module_dicts()
                     # cheap for every call, and touching few objects: a trace function set through another
                     # module's `sys`, the collector, the working directory, faulthandler, the wakeup fd
                     + self._hooks() + self._process() + self._flags() + self._abc_registries()
                     + self._singleton_names() + self._warning_filters()
                     + (self._rlimits() if self.rlimits_named or self.check_this_call else [])
                     + (self._numpy() if self.numpy_named else []))
            if self.check_this_call:  # each object compared here is copied into the session process (its refcount)
                found += (self._sys_modules() + self._import_hooks() + self._signals() + self._classes()
                          + self._instances() + self._package_paths())
                self._forget_constant_memos()
            if module_changes or found or self.clear_cache_after:  # an added module attribute may shadow too
                _clear_sympy_cache()
            restored += found
            if not _changed_since_noted():
                break
            self.check_this_call = True
        _recording = False
        if len(sys.modules) != self.snapshot.module_count:  # the call imported something
            adopt_new_library_modules(self.snapshot)
        _module_changes.clear()
        _function_changes.clear()
        self.check_this_call = self.clear_cache_after = False
        if len(restored) > MAX_NAMES:
            restored = [*restored[:MAX_NAMES], f"{len(restored) - MAX_NAMES} more"]
        return restored

    def _count_code_made_at_run_time(self) -> None:
        """Code the call compiled and ran (`sympify("exec(...)")`, `eval` of an annotation) is checked as if the
        call had written it: its bytecode was not there to read before the call."""
        reach = _runtime_reach
        self.checked_from_now_on |= reach.later
        self.dicts_from_now_on |= reach.dicts_later
        self.names_from_now_on |= reach.names_later
        self.check_this_call |= reach.now or reach.later
        self.clear_cache_after |= reach.stores

    def _builtins(self) -> list[str]:
        current, saved = builtins.__dict__, self.snapshot.builtins
        changed = [name for name in current if name not in saved]
        for name in changed:
            self.kept.append(current.pop(name))
        for name, value in saved.items():
            if current.get(name, _MISSING) is not value:
                self.kept.append(current.get(name))
                current[name] = value
                changed.append(name)
        return [f"builtins.{name}" for name in changed]

    def _module_attributes(self, changes: list[tuple[types.ModuleType, str, Any]]) -> list[str]:
        """Replaced or deleted ones; an added name (importlib binds a new submodule so) changes nothing older."""
        restored = []
        for module, name, old in changes:
            if _replaced(module, name, old):
                self.kept.append(module.__dict__.get(name))
                module.__dict__[name] = old
                restored.append(f"{module.__name__}.{name}")
        return restored

    def _functions(self, changes: list[tuple[Any, str, Any, dict | None]]) -> list[str]:
        """A library function's replaced code or defaults, and its kwdefaults or globals changed in place."""
        global _in_audit_hook
        restored = []
        for function, name, old, contents in changes:
            if contents is None:
                if getattr(function, name) is not old:
                    self.kept.append(getattr(function, name))
                    _in_audit_hook = True  # the guard's own write is no change to note
                    try:
                        setattr(function, name, old)
                    finally:
                        _in_audit_hook = False
                    restored.append(f"{function.__module__}.{function.__qualname__}.{name}")
            elif name == "__kwdefaults__":
                if not _same_entries(old, contents):
                    self.kept.append(dict(old))
                    old.clear()
                    old.update(contents)
                    restored.append(f"{function.__module__}.{function.__qualname__}.{name}")
            else:  # a module's globals: what was replaced or deleted, as in _module_dicts
                restored += _put_back(old, contents, str(contents.get("__name__", "?")), self.kept)
        return restored

    def _containers(self) -> list[str]:
        """The library dicts, lists and sets the call named, as they were before it if it changed them: an added
        entry too (`converter[int] = ...` overrides how every int is read). For an object's attributes, an added
        one only if it hides its class's, and an mpmath context's plain data (`mp.dps`) is the session's."""
        restored = []
        for container, label, holder, saved in self.containers:
            if holder is _NAMED_MEMO:  # what it gained is made again when asked: only a changed entry is noticed
                if isinstance(container, dict):
                    grown, changed = not _same_entries(container, saved), \
                        any(dict.get(container, key, _MISSING) is not value for key, value in saved.items())
                else:
                    grown, changed = _changed(container, saved, grows=False), _changed(container, saved, grows=True)
                if grown:
                    self.kept.append(_copy(container))
                    _refill(container, saved)
                    if id(container) in _DISPATCHERS:
                        _reorder(_DISPATCHERS[id(container)])
                restored += [label] if changed else []
            elif holder is not None and holder is not _GROWS and _is_mpmath_context(holder):
                restored += _put_back(container, saved, label, self.kept)
            elif isinstance(container, dict):
                if _same_entries(container, saved):
                    continue
                if holder is not None and holder is not _GROWS:
                    self._forget_memos(container, saved, holder)
                changed = [key for key in container.keys() | saved.keys()
                           if dict.get(container, key, _MISSING) is not saved.get(key, _MISSING)
                           and (key in saved or holder is None or (holder is not _GROWS and _shadows(holder, key))
                                or _made_by_the_session(dict.get(container, key)))]
                for key in changed:
                    self.kept.append(dict.get(container, key))
                    if key in saved:
                        dict.__setitem__(container, key, saved[key])
                    else:
                        dict.__delitem__(container, key)
                restored += [f"{label}[{_safe_repr(key)}]" for key in changed[:3]]
                if changed and id(container) in _DISPATCHERS:  # its order and cache still name what was removed
                    _reorder(_DISPATCHERS[id(container)])
            elif _changed(container, saved, grows=holder is _GROWS):
                self.kept.append(_copy(container))
                _refill(container, saved)
                restored.append(label)
        self.containers = []
        return restored

    def _forget_memos(self, attributes: dict[str, Any], saved: dict[str, Any], holder: Any) -> None:
        """A memo the object keeps for one of its class's properties (`Q._even` for `Q.even`), added by the call:
        forgotten without a notice, since a call could preset it (`Q._even = Q.odd`) and it is made again when asked."""
        for key in [key for key in attributes if key not in saved and key.startswith("_")]:
            if any(key[1:] in klass.__dict__ for klass in type(holder).__mro__):
                self.kept.append(dict.pop(attributes, key))

    def _module_dicts(self) -> list[str]:
        """What the call wrote into a module's dict directly (`vars(sympy)[...]`, `sympy.__dict__[...]`), which the
        module watch does not see. Plain data (a flag a library function set through `global`) is the session's."""
        restored = []
        for current, saved in self.module_dicts:
            if len(current) != len(saved) or not all(map(is_, current.values(), saved.values())):
                restored += _put_back(current, saved, str(saved.get("__name__", "?")), self.kept)
        self.module_dicts = []
        return restored

    def _sympy_parameters(self) -> list[str]:
        parameters = _sympy_parameters()
        restored = []
        for name, value in self.snapshot.parameters.items():
            if getattr(parameters, name) != value:
                setattr(parameters, name, value)
                restored.append(f"sympy global_parameters.{name}")
        return restored

    def _classes(self) -> list[str]:
        """Replaced and deleted attributes, and added ones that override: a dunder (`__add__` on a class that
        inherited it) or a name a base class has. Other additions are the library's lazy ones (`S.Catalan`
        is installed on SymPy's registry class when first used) and change nothing that was there."""
        return [name for cls, saved in self.snapshot.types for name in self._class(cls, saved)]

    def _class(self, cls: type, saved: dict[str, Any]) -> list[str]:
        current = cls.__dict__
        if len(current) == len(saved) and all(map(is_, current.values(), saved.values())):
            return []
        restored = []
        for name in [name for name in current if name not in saved]:
            if name in CLASS_MEMOS:
                self.kept.append(current[name])
                _try(delattr, cls, name)  # forgotten without a notice: made again when asked
            elif _dunder(name) or any(name in base.__dict__ for base in cls.__mro__[1:]):
                self.kept.append(current[name])
                _try(delattr, cls, name)
                restored.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
        for name, value in saved.items():
            now = current.get(name, _MISSING)
            if now is not value and not (type(value) is int and type(now) is int):  # a counter (Dummy._count)
                self.kept.append(now)
                _try(type.__setattr__, cls, name, value)
                restored.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
        return restored

    def _singleton_names(self) -> list[str]:
        """After every call (one class, ~60 names): a class statement takes a singleton's name without a store
        or a reflective name, even by merely subclassing one (`class Half(type(S.Half))`)."""
        return [name for cls, saved in self.snapshot.singleton_names for name in self._class(cls, saved)]

    def _abc_registries(self) -> list[str]:
        """The classes registered with an abstract class (`numbers.Integral.register(float)`), compared only when
        abc's cache token moved: every registration moves it."""
        if _abc.get_cache_token() == self.abc_token and not self.check_this_call:  # `_abc._reset_registry` moves none
            return []
        restored = []
        for cls, saved in self.snapshot.abc_registries:
            now = _registered(cls)
            if now == saved:
                continue
            keep = saved | {member for member in now - saved if id(member) not in self.snapshot.zygote_classes}
            if keep != now:
                _abc._reset_registry(cls)
                for member in keep:
                    _try(_abc._abc_register, cls, member)
                restored.append(f"the classes registered with {cls.__module__}.{cls.__qualname__}")
        if restored:  # an abstract base's cache remembers what its subclass's registry made an instance of it
            for cls, _ in self.snapshot.abc_registries:
                _abc._reset_caches(cls)
        self.abc_token = _abc.get_cache_token()
        return restored

    def _warning_filters(self) -> list[str]:
        """`warnings.simplefilter('error')` would make every later warning of the library's an exception."""
        if self.snapshot.warning_filters is None:
            return []
        warnings, saved = self.snapshot.warning_filters
        current = warnings.__dict__.get("filters")
        if type(current) is list and len(current) == len(saved) and all(map(is_, current, saved)):
            return []
        if type(current) is list:
            self.kept.append(list(current))
            current[:] = saved
        else:
            self.kept.append(current)
            warnings.__dict__["filters"] = list(saved)
        _try(warnings._filters_mutated)  # the cached "already warned" verdicts were made under the call's filters
        return ["warnings.filters"]

    def _rlimits(self) -> list[str]:
        """A soft limit the call lowered for itself (`setrlimit(RLIMIT_AS, (64 MiB, hard))`): raised back, up to the
        hard limit (which a process cannot raise again: a lowered one stays, and is met as the call's own)."""
        restored = []
        for limit, soft in (self.rlimits or {}).items():
            now, hard = resource.getrlimit(limit)
            if now != soft and _try(resource.setrlimit, limit, (min(soft, hard) if hard != resource.RLIM_INFINITY
                                                               else soft, hard)) is not _FAILED:
                restored.append(f"a resource limit ({_RLIMIT_NAMES.get(limit, limit)})")
        return restored

    def _numpy(self) -> list[str]:
        """numpy's error handling (`np.seterr(all='raise')`) and print options, after a call that named their setters."""
        if self.snapshot.numpy_state is None:
            return []
        numpy, errors, callback, printing = self.snapshot.numpy_state
        restored = []
        if numpy.geterr() != errors or numpy.geterrcall() is not callback:
            numpy.seterr(**errors)
            numpy.seterrcall(callback)
            restored.append("numpy's error handling")
        if numpy.get_printoptions() != printing:
            numpy.set_printoptions(**printing)
            restored.append("numpy's print options")
        return restored

    def _flags(self) -> list[str]:
        restored = []
        for module, name, value in self.snapshot.flags:
            if module.__dict__.get(name, _MISSING) != value:
                module.__dict__[name] = value  # not setattr: the module watch would note the guard's own write
                restored.append(f"{module.__name__}.{name}")
        return restored

    def _forget_constant_memos(self) -> None:
        """mpmath's memos of constants go back to the zygote's after a checked call: one that call set through a
        closure cell (`memo_val = 3 << prec` for pi) cannot be told from one it grew, and a memo is made again
        when asked. No notice: an ordinary call that asked for pi to 1,000 digits also lands here."""
        for memo, precision, value in self.snapshot.constant_memos:
            if memo.memo_prec != precision or memo.memo_val is not value:
                memo.memo_prec, memo.memo_val = precision, value

    def _instances(self) -> list[str]:
        """SymPy's singletons and the objects library modules hold keep their class (`ZZ.__class__ = ...`), and the
        singletons their arguments (`S.Pi._args = ...`)."""
        restored = []
        for instance, cls in self.snapshot.singletons + self.snapshot.instance_classes:
            if type(instance) is not cls and _try(setattr, instance, "__class__", cls) is not _FAILED:
                restored.append(f"the class of {cls.__module__}.{cls.__qualname__}")
        for instance, args in self.snapshot.singleton_args:
            if instance._args is not args:
                self.kept.append(instance._args)
                instance._args = args
                restored.append(f"{type(instance).__name__}._args")
        return restored

    def _package_paths(self) -> list[str]:
        """`sympy.__path__.insert(0, dir)`: later imports of the package's modules would come from there."""
        restored = []
        for current, saved in self.snapshot.package_paths:
            if current != saved:
                current[:] = saved
                restored.append("a package's __path__")
        return restored

    def _sys_modules(self) -> list[str]:
        snapshot, current = self.snapshot, sys.modules
        restored = []
        if len(current) != snapshot.module_count:  # an entry that no import made (no spec), for a later import
            for name in [name for name in current if name not in snapshot.known_modules]:
                module = current[name]
                if not issubclass(type(module), types.ModuleType) or module.__dict__.get("__spec__") is None:
                    self.kept.append(current.pop(name))
                    restored.append(f"sys.modules[{name!r}]")
        if all(map(is_, map(current.get, snapshot.module_names), snapshot.module_values)):
            return restored
        for name, module in zip(snapshot.module_names, snapshot.module_values, strict=True):
            if current.get(name) is not module:
                self.kept.append(current.get(name))
                current[name] = module
                restored.append(f"sys.modules[{name!r}]")
        return restored

    def _import_hooks(self) -> list[str]:
        restored = []
        for name, saved in (("meta_path", self.snapshot.meta_path), ("path_hooks", self.snapshot.path_hooks),
                            ("path", self.snapshot.path)):
            current = getattr(sys, name)
            if len(current) != len(saved) or not all(map(is_, current, saved)):
                self.kept.append(list(current))
                current[:] = saved
                restored.append(f"sys.{name}")
        cache, saved_cache = sys.path_importer_cache, self.snapshot.path_importer_cache
        for path in [path for path, finder in cache.items()  # a finder of the call's own for a library path
                     if saved_cache.get(path, finder) is not finder or type(finder).__module__ not in _FINDER_MODULES]:
            self.kept.append(cache.pop(path))
            if path in saved_cache:
                cache[path] = saved_cache[path]
            restored.append("sys.path_importer_cache")
        return restored

    def _hooks(self) -> list[str]:
        restored = []
        saved = self.snapshot.gc_callbacks
        if len(gc.callbacks) != len(saved) or not all(map(is_, gc.callbacks, saved)):
            self.kept.append(list(gc.callbacks))
            gc.callbacks[:] = saved  # a callback would run inside every later call
            restored.append("gc.callbacks")
        for name, get, put in (("trace function", sys.gettrace, sys.settrace),
                               ("profile function", sys.getprofile, sys.setprofile)):
            if get() is not None:
                self.kept.append(get())
                put(None)
                restored.append(name)
        threading = sys.modules.get("threading")
        for attribute in ("_trace_hook", "_profile_hook"):
            if getattr(threading, attribute, None) is not None:
                self.kept.append(getattr(threading, attribute))
                threading.__dict__[attribute] = None  # not setattr: the module watch would note the guard's write
                restored.append(f"threading.{attribute}")
        return restored

    def _signals(self) -> list[str]:
        restored = []
        for sig, handler in self.signals.items():
            if _signal.getsignal(sig) is not handler:
                self.kept.append(_signal.getsignal(sig))
                _try(_signal.signal, sig, handler)
                restored.append(f"the {signal.Signals(sig).name if sig in _NAMED else f'signal {sig}'} handler")
        if signal.pthread_sigmask(signal.SIG_SETMASK, self.signal_mask) != self.signal_mask:
            restored.append("the signal mask")
        for timer in self.ITIMERS:
            if signal.setitimer(timer, 0) != (0.0, 0.0):
                restored.append("an interval timer")
        return restored

    def _process(self) -> list[str]:
        restored = []
        if _try(os.getcwd) != self.cwd and _try(os.chdir, self.cwd) is not _FAILED:
            restored.append("the working directory")
        digits = sys.get_int_max_str_digits()
        if digits and digits < self.snapshot.int_max_str_digits:  # 0 (no limit) or a higher one is the call's to set
            sys.set_int_max_str_digits(self.snapshot.int_max_str_digits)
            restored.append("sys.int_max_str_digits")
        if not gc.isenabled():
            gc.enable()
            restored.append("the garbage collector")
        faulthandler.cancel_dump_traceback_later()  # its watchdog is a C thread: it would end a later call
        for sig in (signal.SIGALRM, signal.SIGXCPU):  # the timeout's signals, taken over below Python
            if faulthandler.unregister(sig):
                restored.append("a faulthandler signal")
        if signal.set_wakeup_fd(-1) != -1:  # a wakeup byte on the reply pipe would corrupt the next reply
            restored.append("the signal wakeup fd")
        return restored


_FAILED = object()
RESTORE_PASSES = 3
_RLIMIT_NAMES = {getattr(resource, name): name for name in dir(resource) if name.startswith("RLIMIT_")}
_FINDER_MODULES = frozenset({"importlib._bootstrap_external", "_frozen_importlib_external", "zipimport", "builtins"})


def _put_back(current: dict[str, Any], saved: dict[str, Any], label: str, kept: list[Any]) -> list[str]:
    """A module's (or an mpmath context's) replaced or deleted entries, from `saved`. Added names stay (importing
    a submodule binds one), and so does plain data (a flag set through `global`, `mp.dps`: the session's). What
    is replaced goes to `kept` (see `InterpreterGuard.kept`)."""
    restored = []
    for name, value in saved.items():
        if current.get(name, _MISSING) is not value and name not in UNWATCHED_MODULE_ATTRIBUTES \
                and not isinstance(value, _DATA):
            kept.append(current.get(name))
            current[name] = value
            restored.append(f"{label}.{name}")
    return restored


def _made_by_the_session(value: Any) -> bool:
    """A function, class or instance of a class the session defined (`union_sets.register(Interval, FiniteSet)(f)`):
    added to a library registry, it would answer the library's later calls. One a library import adds is the
    library's. Read without running the session's code (no `getattr` that a `__getattr__` could answer)."""
    function = value.__func__ if type(value) in (types.MethodType, staticmethod, classmethod) else value
    if type(function) is types.FunctionType:
        return function.__code__.co_filename.startswith("<")  # a cell, or code the call compiled (`<string>`)
    cls = value if isinstance(value, type) else type(value)
    if not cls.__flags__ & (1 << 9):  # a builtin type: the interpreter's
        return False
    module = type.__getattribute__(cls, "__module__")
    return module == "__main__" or module not in sys.modules  # a cell's class has `__main__`


def _reorder(dispatcher: Any) -> None:
    _try(dispatcher.reorder)
    cache = getattr(dispatcher, "_cache", None)
    if type(cache) is dict:
        cache.clear()


def _refill(container: Any, saved: Any) -> None:
    """A container as its copy was, through the base type's methods (a subclass's may be the call's code)."""
    if isinstance(container, dict):
        dict.clear(container)
        dict.update(container, saved)
    elif isinstance(container, set):
        set.clear(container)
        set.update(container, saved)
    else:
        container[:] = saved


def _try(function: Any, *args: Any) -> Any:
    """A restore that the call made impossible (a read-only attribute, a removed directory) is skipped."""
    try:
        return function(*args)
    except (AttributeError, TypeError, ValueError, OSError):
        return _FAILED


def _changed(container: Any, saved: Any, grows: bool) -> bool:
    """Whether a list, set or array differs from its copy; for one its holder extends, whether what the copy held
    did (`sieve._list[3] = 8`, not `sieve.extend(100)`)."""
    if isinstance(container, set):
        return container != saved
    if grows:
        container = container[: len(saved)]
        if len(container) != len(saved):
            return True
    if isinstance(container, array.array):
        return container != saved
    return len(container) != len(saved) or not all(map(is_, container, saved))


def _changed_since_noted() -> bool:
    """Whether what the restore's own run of the call's code noted differs now: a library function's kwdefaults
    read by `inspect` while SymPy's cache is cleared is no change, and must not cost another, full pass."""
    for module, name, old in _module_changes.values():
        if _replaced(module, name, old):
            return True
    for function, name, old, contents in _function_changes.values():
        current = getattr(function, name)
        if current is not old or (contents is not None and not _same_entries(current, contents)):
            return True
    return False


def _replaced(module: types.ModuleType, name: str, old: Any) -> bool:
    """A module attribute the call replaced or deleted (one it added, `old` missing, changes nothing older)."""
    return old is not _MISSING and module.__dict__.get(name, _MISSING) is not old


def _same_entries(current: dict[Any, Any], saved: dict[Any, Any]) -> bool:
    return current.keys() == saved.keys() and all(map(is_, current.values(), saved.values()))


_library_caches: list[Any] = []  # the library's own functools caches, which SymPy's clear_cache does not clear


def _clear_sympy_cache() -> None:
    cache = sys.modules.get("sympy.core.cache")
    if cache is not None:
        cache.clear_cache()
    for library_cache in _library_caches:  # `igcd` memoizes by hash: a key whose __eq__ lies poisons it
        library_cache.cache_clear()
