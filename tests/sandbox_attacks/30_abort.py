# expect: killed
# says: SIGABRT
import os
os.abort()
