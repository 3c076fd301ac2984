# expect: error
# says: not allowed
# never: root:x:0
import pathlib
print(pathlib.Path('/etc/passwd').read_text())
