# expect: error
# says: not allowed
import os
os.execv('/bin/sh', ['sh', '-c', 'id'])
