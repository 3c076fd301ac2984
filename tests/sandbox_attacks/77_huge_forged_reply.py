# expect: error
# says: exceeds
# a frame header announcing 50 MB on every descriptor: the parent refuses it without reading it
import os, struct
for fd in range(3, 64):
    try:
        os.write(fd, struct.pack('>I', 50 << 20) + b'{' * 4096)
    except OSError:
        pass
while True:
    pass
