# expect: error
# says: No such file or directory
# never: root:x:0
print(open('/etc/passwd').read())
