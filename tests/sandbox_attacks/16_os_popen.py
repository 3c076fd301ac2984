# expect: error
# says: not allowed
import os
print(os.popen('id').read())
