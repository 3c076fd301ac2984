# expect: ok
# then: prime(7), primepi(22), isprime(21)
# gives: (17, 8, False)
from sympy import sieve
sieve._list.extend([15, 21])
'ok'
