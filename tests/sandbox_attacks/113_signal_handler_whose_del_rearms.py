# expect: ok
# says: put back
# putting the handler back releases it: its __del__ must not run inside the restore
import signal, sympy
class Handler:
    def __call__(self, *args):
        pass
    def __del__(self):
        sympy.solve = lambda *args, **kwargs: [42]
        signal.signal(signal.SIGUSR1, Handler())
signal.signal(signal.SIGUSR1, Handler())
'ok'
