# expect: memory
# says: memory
b = bytearray(2 ** 33)
