# expect: ok
# says: put back
# sys reached through a module the call did not import by that name: no `import sys`, no store, no dunder
def shift(frame, event, arg):
    if event == 'call' and frame.f_code.co_name == 'solve':
        frame.f_locals['f'] = frame.f_locals['f'] - 7
fractions.sys.settrace(shift)
'ok'
