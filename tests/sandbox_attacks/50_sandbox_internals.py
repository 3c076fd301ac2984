# expect: ok
# says: nothing of the parent
# the sandbox's parent side is not loaded in the zygote, and cannot be imported (the project dir is not in a
# session's root); were it there, it would hold nothing of the parent: its Sandbox object, sessions and
# environment live in another process
import importlib
try:
    parent_side = importlib.import_module("tool_sandbox.sandbox")
    print("nothing of the parent" if parent_side._default is None else parent_side._default)
except ModuleNotFoundError:
    print("nothing of the parent: its module is not even loaded here")
