# expect: error
# says: not allowed
# never: root:x:0
print(open('/etc/passwd').read())
