# expect: error
# says: No such file or directory
# never: SANDBOX_CANARY
print(open('/proc/1/environ', 'rb').read())
