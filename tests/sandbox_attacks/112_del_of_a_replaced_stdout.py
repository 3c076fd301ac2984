# expect: ok
# the session puts its own stdout back after the call, which releases this one
import sys, sympy
class Sink:
    def write(self, text):
        return len(text)
    def flush(self):
        pass
    def __del__(self):
        sympy.Integer.__add__ = lambda a, b: sympy.Integer(42)
sys.stdout = Sink()
'ok'
