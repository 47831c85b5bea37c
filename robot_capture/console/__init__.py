"""The operator's console: episode manager, stream freshness, commands, key/Joy maps, web app.

* :mod:`.streams` (StreamTracker), :mod:`.manager` (EpisodeManager), :mod:`.commands`
  (command set, KeyMap, JoyMap): ROS-free; the recorder node owns the manager.
* :mod:`.keys` (``console --keys``) and :mod:`.web` (``console --web``) drive the recorder
  only through its services (``robot_capture.floor.client.EpisodeClient``); :mod:`.web_guard`
  is the web app's request guard (Host, Origin, CSRF token, body and event-stream caps).

DESIGN.md, "console", is the contract.
"""
