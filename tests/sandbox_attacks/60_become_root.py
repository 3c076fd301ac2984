# expect: error
# says: Operation not permitted
import os
os.setuid(0)
