# expect: error
# says: Read-only file system
open('../escape.txt', 'w').write('escaped')
