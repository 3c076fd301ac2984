# expect: memory
# says: memory
chunks = []
while True:
    chunks.append(' ' * 10 ** 8)
