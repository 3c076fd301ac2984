# expect: error
# says: not allowed
open('../escape.txt', 'w').write('escaped')
