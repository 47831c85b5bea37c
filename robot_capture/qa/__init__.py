"""Episode QA: one verdict per episode (pass/warn/fail, reasons in plain words), stored with the data.

Modules: ``config`` (config/qa.yaml, pydantic), ``bagdata`` (indexes, header stamps from CDR
bytes, only the payloads a check needs), ``context`` (shared definitions: timebase, drops,
rates), ``checks_streams`` and ``checks_motion`` (the checks), ``run`` (:func:`qa_episode`,
:func:`qa_paths`), ``recorder`` (the recorder's cheap verdict at stop), ``report`` (HTML).
The verdict model and its sidecar ``<bag>/qa.json`` belong to :mod:`robot_capture.episodes`.
ROS-free. DESIGN.md "qa" is the contract.
"""
