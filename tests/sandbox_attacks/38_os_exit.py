# expect: killed
# says: status 7
import os
os._exit(7)
