# expect: error
# says: Operation not permitted
# never: uid=
import os
print(os.popen('id').read())
