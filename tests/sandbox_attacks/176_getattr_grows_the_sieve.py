# expect: ok
# then: isprime(1000003)
# gives: True
getattr(sieve, '_li' + 'st').append(1000036000099)
'ok'
