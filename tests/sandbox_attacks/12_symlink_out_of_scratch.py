# expect: error
# says: No such file or directory
# never: root:x:0
import os
os.symlink('/etc/passwd', 'link')
print(open('link').read())
