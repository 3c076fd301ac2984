# expect: error
# says: not allowed
import subprocess
subprocess.run(['id'])
