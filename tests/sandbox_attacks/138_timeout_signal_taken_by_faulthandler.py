# expect: ok
# says: put back
# then: __import__('faulthandler').unregister(__import__('signal').SIGALRM)
# gives: False
import faulthandler, signal
sink = open('/dev/null', 'w')
faulthandler.register(signal.SIGALRM, file=sink, chain=False)
'ok'
