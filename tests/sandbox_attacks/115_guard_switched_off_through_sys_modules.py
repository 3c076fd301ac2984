# expect: error
# says: KeyError
import sys, sympy
sys.modules['tool_sandbox.interpreter_state'].InterpreterGuard.after = lambda self: []
sympy.Integer.__add__ = lambda a, b: sympy.Integer(42)
'ok'
