# expect: error
# says: not allowed
# never: root:x:0
import os
os.symlink('/etc/passwd', 'link')
print(open('link').read())
