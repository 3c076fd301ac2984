# expect: ok
# then: bell(5)
# gives: 52
bell(12)
for cell in bell._bell.__closure__:
    v = cell.cell_contents
    if type(v) is list:
        v[5] = 99
'ok'
