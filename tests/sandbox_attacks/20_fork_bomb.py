# expect: error
# says: not allowed
import os
while True:
    os.fork()
