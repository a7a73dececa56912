"""Every core and every machine (issue 17).

* :mod:`~bridge.cluster.plan`: the ports of each worker of a host;
* :mod:`~bridge.cluster.supervisor` and :mod:`~bridge.cluster.worker`:
  ``rtbridge serve --workers N``;
* :mod:`~bridge.cluster.kamailio`: the Kamailio dispatcher configuration in front of them;
* :mod:`~bridge.cluster.registry`: live calls and nodes in Redis, and the per-node command
  channel (:mod:`~bridge.cluster.commands`) through which any node's control plane acts on
  any call; :mod:`~bridge.cluster.proxy` carries a sideband to the call's node.
"""
