# expect: ok
# says: armed
# a finalizer meant to run when the sandbox closes the session: the session process is SIGKILLed, no finalizer runs
class Trap:
    def __del__(self):
        open('/tmp/tool_sandbox_escape_del.txt', 'w').write('ran at close')
        while True:
            pass
trap = Trap()
print('armed')
