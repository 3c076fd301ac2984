# expect: error
# says: not allowed
# never: SANDBOX_CANARY
print(open('/proc/1/environ', 'rb').read())
