# expect: error
# says: No such file or directory
# never: root:x:0
import pathlib
print(pathlib.Path('/etc/passwd').read_text())
