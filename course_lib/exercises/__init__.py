"""The answer key: each notebook's exercises, their references, cases and named mistakes.

A notebook's exercise cell holds the learner's function (the solution between `### BEGIN
SOLUTION` and `### END SOLUTION`, a stub in the student version); the check cell after it is one
call into this package, for example

    from course_lib.exercises import nb05
    nb05.stable_log_softmax(stable_log_softmax)

so the student notebook shows no reference and no wrong answer. One module per notebook
(`nb01`, `nb03`, ...) defines, per exercise, a function `name(fn, *, quiet=False) -> Verdict`
that builds the cases, the reference and the named mistakes and hands them to the generic
`course_lib.check.check`. Like any answer key, the modules hold the answers: a learner who wants
to learn reads them after trying.

Layers: this package sits on top. Its modules may import any course module (the references are
the library's own implementations); no course module imports it, and `check` still imports no
concept module.
"""
