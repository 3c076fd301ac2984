# expect: error
# says: Resource temporarily unavailable
import os
while True:
    os.fork()
