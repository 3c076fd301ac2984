# expect: error
# says: Operation not permitted
# never: uid=
import os
os.execv('/bin/sh', ['sh', '-c', 'id'])
