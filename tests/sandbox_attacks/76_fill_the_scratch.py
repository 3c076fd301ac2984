# expect: error
# says: No space left on device
# every file stays under RLIMIT_FSIZE (16 MiB); together they pass the 64 MiB scratch
for i in range(20):
    with open(f'fill-{i}.bin', 'wb') as f:
        f.write(b'0' * (12 << 20))
