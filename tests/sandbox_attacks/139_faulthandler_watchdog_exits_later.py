# expect: ok
# then: [__import__('time').sleep(0.1) for _ in range(6)] and 1
# gives: 1
import faulthandler
sink = open('/dev/null', 'w')
faulthandler.dump_traceback_later(0.3, exit=True, file=sink)
'ok'
