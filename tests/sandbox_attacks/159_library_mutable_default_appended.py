# expect: ok
# then: solve_linear(x - 3)
# gives: (x, 3)
import inspect
inspect.signature(solve_linear).parameters['exclude'].default.append(Symbol('x'))
'ok'
