"""A function that calls itself forever."""



def countdown(n):
    return countdown(n - 1)


def teleop_setup():
    countdown(10)
