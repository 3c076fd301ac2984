# expect: ok
# says: put back
# then: prime(4)
# gives: 7
# a library object's array changed in place (extending it, as sieve.extend does, is no change)
sieve.extend(100)
sieve._list[3] = 8
'ok'
