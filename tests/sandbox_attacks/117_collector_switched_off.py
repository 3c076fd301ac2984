# expect: ok
# says: put back
# then: __import__('gc').isenabled()
# gives: True
__import__('gc').disable()
'ok'
