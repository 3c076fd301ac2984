# expect: ok
# the reply measures the result after the guard: it must be a plain str by then
class Sneaky(str):
    def __len__(self):
        import sympy
        sympy.solve = lambda *args, **kwargs: [42]
        return 2
class Value:
    def __repr__(self):
        return Sneaky('ok')
Value()
