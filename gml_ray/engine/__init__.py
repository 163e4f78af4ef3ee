"""Running a task on Ray: the scheduler, its loop, the jobs and where they run.

:mod:`.scheduler` (:class:`~gml_ray.engine.scheduler.NaiveScheduler`, the run's driver side),
:mod:`.loop` (the scheduler actor's loop), :mod:`.components` (a config's plugins, built),
:mod:`.factory` (job kinds), :mod:`.job` and :mod:`.spec` (a job, scheduler side), :mod:`.runners`,
:mod:`.workers`, :mod:`.procgroup`, :mod:`.jobtree` (a job, worker side), :mod:`.pool`,
:mod:`.channel`, :mod:`.messages`, :mod:`.ingest`, :mod:`.drain`, :mod:`.assessing`,
:mod:`.timers` (the loop's parts), :mod:`.resume`, :mod:`.liveness`, :mod:`.runtime`,
:mod:`.snapshot` (a run's lifecycle). The user's import path is :mod:`gml_ray.schedulers`.
"""
