# expect: error
# says: Operation not permitted
# never: uid=
import subprocess
subprocess.run(['id'])
