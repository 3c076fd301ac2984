# expect: memory
# says: memory
x = [0] * (10 ** 10)
