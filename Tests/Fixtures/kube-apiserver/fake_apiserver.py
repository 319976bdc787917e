#!/usr/bin/env python3
"""A small in-memory Kubernetes API server for real kubectl to talk to in tests.

It serves just enough of core/v1 (pods, pod logs, namespaces) and batch/v1 (jobs), and
plays Job controller and kubelet: a created Job gets a Pod, which "runs" as a JSON script
file decides (canned logs, or real local processes: init containers, then the main container,
with emptyDir volumes as host temporary folders). See README.md.
"""
import argparse, copy, json, os, random, re, select, shutil, signal, socket, subprocess, tempfile, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.RLock()
CHANGED = threading.Condition(LOCK)  # notified when an object changes or a pod log grows
JOBS, PODS = {}, {}                  # (namespace, name) -> object, as served
RUNTIME = {}                         # (namespace, pod name) -> PodRuntime
EVENTS = []                          # (resourceVersion, type, object snapshot): what watches replay
STATE = {"rv": 1000}
ARGS = None

def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

def random_suffix():
    # The alphabet apimachinery uses for generated names (no vowels, no look-alike digits).
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))

def touch(obj, event="MODIFIED"):
    """Every change bumps the global resourceVersion and is remembered for watches. Needs LOCK."""
    STATE["rv"] += 1
    obj["metadata"]["resourceVersion"] = str(STATE["rv"])
    EVENTS.append((STATE["rv"], event, copy.deepcopy(obj)))
    CHANGED.notify_all()

class ApiError(Exception):
    """Becomes a metav1.Status body; kubectl turns it into `Error from server (Reason): message`."""
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, **({"details": details} if details else {}),
                       "code": code}

def not_found(plural, group, name):
    return ApiError(404, "NotFound", f'{plural}{"." + group if group else ""} "{name}" not found',
                    {"name": name, **({"group": group} if group else {}), "kind": plural})

def invalid(name, causes):
    texts = [f"{field}: {msg}" for field, msg in causes]
    return ApiError(422, "Invalid", f'Job.batch "{name}" is invalid: '
                    + (texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"),
                    {"name": name, "group": "batch", "kind": "Job",
                     "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]})

# ---------------------------------------------------------------- discovery

def api_resource(name, kind, verbs, namespaced=True, **extra):
    return {"name": name, "singularName": "" if "/" in name else kind.lower(), "namespaced": namespaced,
            "kind": kind, "verbs": verbs, **extra}

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
# Legacy (unaggregated) discovery: kubectl asks for the aggregated form first but accepts this.
DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
        "name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        api_resource("pods", "Pod", VERBS, shortNames=["po"], categories=["all"]),
        api_resource("pods/log", "Pod", ["get"]),
        api_resource("namespaces", "Namespace", ["get", "list", "watch"], False, shortNames=["ns"])]},
    "/apis/batch/v1": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "batch/v1", "resources": [
        api_resource("jobs", "Job", VERBS, categories=["all"]),
        api_resource("jobs/status", "Job", ["get", "patch", "update"])]},
    # Keep minor 32: the gcloud kubectl "dispatcher" picks its client binary from the server's version.
    "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake", "gitCommit": "0" * 40,
                 "gitTreeState": "clean", "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23.4",
                 "compiler": "gc", "platform": "linux/amd64"},
}
OPENAPI_GROUPS = {"api/v1": ("", "/api/v1/namespaces/{namespace}/pods/{name}", "Pod"),
                  "apis/batch/v1": ("batch", "/apis/batch/v1/namespaces/{namespace}/jobs/{name}", "Job")}

def openapi_v3(path, prefix):
    """Just enough OpenAPI v3 for kubectl to see that the server takes `fieldValidation`: kubectl then
    leaves validation to the server instead of failing with "failed to download openapi"."""
    if path == "/openapi/v3":
        return {"paths": {gv: {"serverRelativeURL": f"{prefix}/openapi/v3/{gv}?hash=fake"} for gv in OPENAPI_GROUPS}}
    if (gv := path.removeprefix("/openapi/v3/")) not in OPENAPI_GROUPS:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    group, item_path, kind = OPENAPI_GROUPS[gv]
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": {item_path: {
        "patch": {"x-kubernetes-group-version-kind": {"group": group, "version": "v1", "kind": kind},
                  "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                  "responses": {"200": {"description": "OK"}}}}}}

def namespace_exists(ns):
    return not ARGS.namespaces or ns in ARGS.namespaces.split(",")

def namespaces(name):
    def ns(n):
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": n, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, n)), "resourceVersion": "1",
            "creationTimestamp": "2024-01-01T00:00:00Z", "labels": {"kubernetes.io/metadata.name": n}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
    if name is not None:
        if not namespace_exists(name):
            raise not_found("namespaces", "", name)
        return ns(name)
    with LOCK:
        names = ARGS.namespaces.split(",") if ARGS.namespaces else sorted({"default"} | {k[0] for k in {**JOBS, **PODS}})
    return {"apiVersion": "v1", "kind": "NamespaceList", "metadata": {"resourceVersion": str(STATE["rv"])},
            "items": [ns(n) for n in names]}

# ---------------------------------------------------------------- selectors

SELECTOR_TERM = re.compile(r"\s*(?:!\s*(?P<absent>[\w./-]+)|(?P<key>[\w./-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[\w./-]*)"
                           r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*(?:,|$)")

def label_matcher(selector):
    """Equality- and set-based label selectors, as a predicate on a labels dict."""
    tests, pos, selector = [], 0, (selector or "").strip()
    while pos < len(selector):
        m = SELECTOR_TERM.match(selector, pos)
        if not m or m.end() == pos:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {selector!r}")
        pos, g = m.end(), m.groupdict()
        if g["absent"]:
            tests.append(lambda l, k=g["absent"]: k not in l)
        elif g["op"]:
            tests.append(lambda l, k=g["key"], v=g["value"], neg=g["op"] == "!=": (l.get(k) == v) != neg)
        elif g["setop"]:
            vs = {v.strip() for v in g["values"].split(",")}
            tests.append(lambda l, k=g["key"], vs=vs, neg=g["setop"] == "notin": (l.get(k) in vs) != neg)
        else:
            tests.append(lambda l, k=g["key"]: k in l)
    return lambda labels: all(t(labels or {}) for t in tests)

def field_matcher(selector):
    # `kubectl wait` and `delete --wait` select by fieldSelector=metadata.name=NAME.
    tests = []
    for term in filter(None, (selector or "").split(",")):
        path, op, value = re.match(r"([\w.]+)\s*(==|=|!=)\s*(.*)", term).groups()
        def get(obj, parts=path.split(".")):
            for p in parts:
                obj = obj.get(p, {}) if isinstance(obj, dict) else {}
            return obj if isinstance(obj, str) else ""
        tests.append(lambda o, get=get, v=value, neg=op == "!=": (get(o) == v) != neg)
    return lambda obj: all(t(obj) for t in tests)

def matcher(ns, query):
    labels, fields = label_matcher(query.get("labelSelector")), field_matcher(query.get("fieldSelector"))
    return lambda o: (ns is None or o["metadata"]["namespace"] == ns) and labels(o["metadata"].get("labels")) and fields(o)

# ---------------------------------------------------------------- Job controller and kubelet

def load_rule(job):
    """First matching rule of the script, re-read for every Job so a test can change it between runs."""
    try:
        with open(ARGS.script) as f:
            rules = json.load(f).get("rules", [])
    except FileNotFoundError:
        rules = []
    meta = job["metadata"]
    for rule in rules:
        match = rule.get("match", {})
        if all((meta.get("labels") or {}).get(k) == v for k, v in match.get("label", {}).items()) \
                and re.search(match.get("name_regex", ""), meta["name"]) \
                and match.get("namespace", meta["namespace"]) == meta["namespace"]:
            return rule
    return {"action": "succeed"}

class PodRuntime:
    """What the kubelet knows about a pod: a log per container (init containers included), which
    containers have started and which init containers have exited, the process running now, its
    emptyDir folders on the host, and whether it has been told to stop."""
    def __init__(self, pod):
        spec = pod["spec"]
        self.main = spec["containers"][0]["name"]
        self.logs = {c["name"]: bytearray() for c in (spec.get("initContainers") or []) + spec["containers"]}
        self.started, self.ended = set(), set()
        self.done, self.proc = False, None
        self.volumes = {}   # emptyDir volume name -> host folder
        self.stop = threading.Event()

    def append(self, data, container=None):
        with LOCK:
            self.logs[container or self.main] += data
            CHANGED.notify_all()

def make_volumes(pod, rt):
    """A fresh host folder for every emptyDir volume, made when the pod starts. Needs LOCK."""
    for volume in pod["spec"].get("volumes") or []:
        if "emptyDir" in volume and volume.get("name") and volume["name"] not in rt.volumes:
            rt.volumes[volume["name"]] = tempfile.mkdtemp(
                prefix=f"fake-kubelet-{pod['metadata']['name']}-{volume['name']}-")

def remove_volumes(rt):
    """Once the pod is deleted (and its processes have exited), or when the server exits. Needs LOCK."""
    volumes, rt.volumes = rt.volumes, {}
    for folder in volumes.values():
        shutil.rmtree(folder, ignore_errors=True)

def create_job(namespace, job, dry_run):
    meta, spec = job.setdefault("metadata", {}), job.setdefault("spec", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + random_suffix()
    name = meta.get("name", "")
    if (job.get("apiVersion"), job.get("kind")) != ("batch/v1", "Job"):
        raise ApiError(400, "BadRequest", f"the API version in the data ({job.get('apiVersion')}) does not match "
                       "the expected API version (batch/v1)")
    if meta.get("namespace", namespace) != namespace:
        raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                       "sent on the request")
    template = spec.setdefault("template", {})
    pod_spec = template.setdefault("spec", {})
    pod_spec.setdefault("restartPolicy", "Always")   # the pod default, which a Job then rejects
    causes = []
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:   # it becomes a label value
        causes.append(("metadata.name", f'Invalid value: "{name}": must be a valid label value: at most 63 '
                       "lower case alphanumeric characters or '-', starting and ending with an alphanumeric"))
    if pod_spec["restartPolicy"] not in ("Never", "OnFailure"):
        causes.append(("spec.template.spec.restartPolicy",
                       f'Unsupported value: "{pod_spec["restartPolicy"]}": supported values: "OnFailure", "Never"'))
    if not pod_spec.get("containers"):
        causes.append(("spec.template.spec.containers", "Required value"))
    volume_names, container_names = {v.get("name") for v in pod_spec.get("volumes") or []}, set()
    for kind in ("containers", "initContainers"):   # container names are unique across both lists
        for i, c in enumerate(pod_spec.get(kind) or []):
            field = f"spec.template.spec.{kind}[{i}]"
            causes += [(f"{field}.{f}", "Required value") for f in ("name", "image") if not c.get(f)]
            if c.get("name") in container_names:
                causes.append((f"{field}.name", f'Duplicate value: "{c["name"]}"'))
            container_names.add(c.get("name"))
            for j, mount in enumerate(c.get("volumeMounts") or []):
                if not mount.get("name"):
                    causes.append((f"{field}.volumeMounts[{j}].name", "Required value"))
                elif mount["name"] not in volume_names:
                    causes.append((f"{field}.volumeMounts[{j}].name", f'Not found: "{mount["name"]}"'))
                if not mount.get("mountPath"):
                    causes.append((f"{field}.volumeMounts[{j}].mountPath", "Required value"))
    if causes:
        raise invalid(name, causes)
    with LOCK:
        if (namespace, name) in JOBS:
            raise ApiError(409, "AlreadyExists", f'jobs.batch "{name}" already exists',
                           {"name": name, "group": "batch", "kind": "jobs"})
        # What the real API server defaults, so `get -o json` looks like it does on a cluster.
        uid = str(uuid.uuid4())
        meta.update(namespace=namespace, uid=uid, generation=1, creationTimestamp=now())
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                       "controller-uid": uid, "job-name": name})
        meta["labels"] = meta.get("labels") or dict(labels)
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        for key, value in {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
                           "suspend": False, "podReplacementPolicy": "TerminatingOrFailed"}.items():
            spec.setdefault(key, value)
        job["status"] = {}
        if dry_run:
            return job
        JOBS[(namespace, name)] = job
        touch(job, "ADDED")
        created = copy.deepcopy(job)   # the controller only fills in status after the create returns
        set_job_status(job, startTime=now(), active=1, ready=0, terminating=0, uncountedTerminatedPods={})
        start_pod(job, load_rule(job))
        if spec.get("activeDeadlineSeconds") is not None:
            timer = threading.Timer(float(spec["activeDeadlineSeconds"]), deadline_exceeded, (job,))
            timer.daemon = True
            timer.start()
        return created

def set_job_status(job, drop=(), **fields):
    for key in drop:
        job["status"].pop(key, None)
    job["status"].update(fields)
    touch(job)

def job_alive(job):
    conditions = {c["type"] for c in job["status"].get("conditions", [])}
    return JOBS.get((job["metadata"]["namespace"], job["metadata"]["name"])) is job and not conditions & {"Complete", "Failed"}

def condition(kind, reason, message):
    t = now()
    return {"type": kind, "status": "True", "lastProbeTime": t, "lastTransitionTime": t, "reason": reason, "message": message}

def waiting_status(container, reason):
    return {"name": container["name"], "image": container["image"], "imageID": "", "ready": False, "restartCount": 0,
            "started": False, "lastState": {}, "state": {"waiting": {"reason": reason}}}

def start_pod(job, rule):
    ns, jname, tmpl = job["metadata"]["namespace"], job["metadata"]["name"], job["spec"]["template"]
    inits = tmpl["spec"].get("initContainers") or []
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{jname}-{random_suffix()}", "generateName": jname + "-", "namespace": ns, "uid": str(uuid.uuid4()),
        "creationTimestamp": now(), "labels": dict(tmpl["metadata"]["labels"]),
        **({"annotations": dict(tmpl["metadata"]["annotations"])} if tmpl["metadata"].get("annotations") else {}),
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": jname, "uid": job["metadata"]["uid"],
                             "controller": True, "blockOwnerDeletion": True}]},
        "spec": {**copy.deepcopy(tmpl["spec"]), "nodeName": "fake-node"},
        # With init containers, the kubelet's default waiting reason is PodInitializing for every container.
        "status": {"phase": "Pending", "qosClass": "BestEffort", "hostIP": "10.0.0.1",
                   **({"initContainerStatuses": [waiting_status(c, "PodInitializing") for c in inits]} if inits else {}),
                   "containerStatuses": [waiting_status(c, "PodInitializing" if inits else "ContainerCreating")
                                         for c in tmpl["spec"]["containers"]]}}
    key = (ns, pod["metadata"]["name"])
    PODS[key], RUNTIME[key] = pod, PodRuntime(pod)
    touch(pod, "ADDED")
    threading.Thread(target=run_pod, args=(job, pod, RUNTIME[key], rule), daemon=True).start()

def set_pod_status(pod, phase, state=None, initialized=True):
    """Phase and conditions, and (given a state) that of every main container. Needs LOCK."""
    running = phase == "Running"
    conditions = []
    for kind, ok in (("PodScheduled", True), ("Initialized", initialized), ("ContainersReady", running), ("Ready", running)):
        conditions.append({"type": kind, "status": str(ok), "lastTransitionTime": now()})
        if kind == "Initialized" and not ok:
            incomplete = [cs["name"] for cs in pod["status"].get("initContainerStatuses", []) if not cs["ready"]]
            conditions[-1].update(reason="ContainersNotInitialized",
                                  message=f"containers with incomplete status: [{' '.join(incomplete)}]")
    pod["status"].update(phase=phase, podIP="10.244.0.7", conditions=conditions)
    pod["status"].setdefault("startTime", now())
    for cs in pod["status"]["containerStatuses"] if state is not None else []:
        cs.update(state=copy.deepcopy(state), ready=running, started=running, containerID="containerd://" + uuid.uuid4().hex)
    touch(pod)

def set_init_status(pod, name, state):
    """An init container is ready once it has exited 0; `started` is true only while it runs. Needs LOCK."""
    for cs in pod["status"]["initContainerStatuses"]:
        if cs["name"] == name:
            if "running" in state:
                cs["containerID"] = "containerd://" + uuid.uuid4().hex
            else:
                state["terminated"]["containerID"] = cs["containerID"]
            cs.update(state=state, started="running" in state,
                      ready=state.get("terminated", {}).get("exitCode") == 0)
    touch(pod)

def run_pod(job, pod, rt, rule):
    rt.stop.wait(float(rule.get("pending_seconds", 0)))
    key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
    inits, main = pod["spec"].get("initContainers") or [], pod["spec"]["containers"][0]
    execute = rule.get("action") == "exec"
    started, exit_code, stage = now(), 137, "pending"   # stage: how far the pod got (pending, init, main)
    with LOCK:
        if not rt.stop.is_set():
            make_volumes(pod, rt)
            stage = "init"
    # Init containers run one after the other, each only once the one before has exited 0. A canned
    # rule runs none of them: they just complete, with no output.
    for container in inits if stage == "init" else []:
        with LOCK:
            if rt.stop.is_set():
                break
            init_started = now()
            rt.started.add(container["name"])
            set_init_status(pod, container["name"], {"running": {"startedAt": init_started}})
            set_pod_status(pod, "Pending", initialized=False)
        code = run_exec(pod, rt, rule, container) if execute else 0
        with LOCK:
            rt.ended.add(container["name"])
            CHANGED.notify_all()
            if key in PODS:
                set_init_status(pod, container["name"], {"terminated": {
                    "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                    "startedAt": init_started, "finishedAt": now()}})
        if code != 0:   # restartPolicy Never: the pod fails, its main containers never start
            exit_code = code
            break
    else:
        with LOCK:
            if stage == "init" and not rt.stop.is_set():
                started = now()
                set_pod_status(pod, "Running", {"running": {"startedAt": started}})
                set_job_status(job, ready=1)
                rt.started.update(c["name"] for c in pod["spec"]["containers"])   # only the first one runs
                stage = "main"
    if stage == "main":
        exit_code = run_exec(pod, rt, rule, main) if execute else run_canned(rt, rule)
    with LOCK:
        rt.done = True
        if key in PODS:   # else already deleted along with its Job
            if stage == "init" and inits:   # not initialized: the main containers stay waiting PodInitializing
                set_pod_status(pod, "Failed", initialized=False)
            else:
                set_pod_status(pod, "Succeeded" if exit_code == 0 else "Failed", {"terminated": {
                    "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                    "startedAt": started, "finishedAt": now()}})
            if rt.stop.is_set():   # stopped by the deadline: deleted once its container has exited
                touch(PODS.pop(key), "DELETED")
        if key not in PODS:   # its processes have all exited, so its volumes can go
            remove_volumes(rt)
        if not job_alive(job):
            return
        failed = job["status"].get("failed", 0) + (exit_code != 0 or rt.stop.is_set())
        conditions = job["status"].get("conditions", [])
        if conditions and conditions[-1]["type"] == "FailureTarget":
            # 1.32 adds the terminal condition only once the pods of a failing Job have terminated.
            set_job_status(job, ("active",), ready=0, failed=failed,
                           conditions=conditions + [condition("Failed", conditions[-1]["reason"], conditions[-1]["message"])])
        elif exit_code == 0:
            why = ("CompletionsReached", "Reached expected number of succeeded pods")
            set_job_status(job, ("active",), ready=0, succeeded=1, completionTime=now(),
                           conditions=[condition("SuccessCriteriaMet", *why), condition("Complete", *why)])
        elif failed <= job["spec"]["backoffLimit"]:
            set_job_status(job, ready=0, failed=failed)   # replaced at once: the real 10s+ back-off is skipped
            start_pod(job, rule)
        else:
            reason = rule.get("reason", "BackoffLimitExceeded")
            why = (reason, "Job has reached the specified backoff limit" if reason == "BackoffLimitExceeded"
                   else "Job was active longer than specified deadline" if reason == "DeadlineExceeded"
                   else f"Job failed: {reason}")
            set_job_status(job, ("active",), ready=0, failed=failed,
                           conditions=[condition("FailureTarget", *why), condition("Failed", *why)])

def run_canned(rt, rule):
    for line in rule.get("logs", []):
        if rt.stop.wait(float(rule.get("delay_seconds", 0))):
            return 143
        rt.append(line.encode() + b"\n")
    return int(rule.get("exit_code", 1)) if rule.get("action") == "fail" else 0

# Where a container path may start inside an argument or env value (`/p`, `--flag=/p`, `a:/p`, `sh -c
# "cd /p && x >/p/f"`), and what may not follow its prefix (more of a file name).
PATH_START, PATH_NAME_GOES_ON = r"(?<![^\s=:'\"`<>|&;(,])", r"(?![\w.~+@%-])"

def path_mapper(pod, rt, rule, container):
    """Container paths to host paths. The container's emptyDir mounts come first, since a mount hides
    whatever the image has below it; then the rule's `map_paths`. Longest prefix first within each."""
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        if mount.get("name") in rt.volumes and mount.get("mountPath"):
            folder = rt.volumes[mount["name"]]
            if mount.get("subPath"):   # the kubelet makes a missing subPath folder
                folder = os.path.join(folder, mount["subPath"])
                os.makedirs(folder, exist_ok=True)
            mounts[mount["mountPath"].rstrip("/") or "/"] = folder
    paths = {k.rstrip("/") or "/": v for k, v in (rule.get("exec", {}).get("map_paths") or {}).items()}
    order = sorted(mounts, key=len, reverse=True) + sorted(paths, key=len, reverse=True)
    if not order:
        return lambda value: value
    host = {**paths, **mounts}
    pattern = re.compile(PATH_START + "(" + "|".join(map(re.escape, order)) + ")" + PATH_NAME_GOES_ON)
    return lambda value: pattern.sub(lambda m: host[m.group(1)], value)

def run_exec(pod, rt, rule, container):
    """Runs a container's command + args as a local process, its output going to that container's log."""
    spec, name = rule.get("exec", {}), container["name"]
    mapped = path_mapper(pod, rt, rule, container)
    argv = list(spec.get("command_prefix", [])) + [mapped(a) for a in container.get("command", []) + container.get("args", [])]
    env = dict(os.environ, HOSTNAME=pod["metadata"]["name"])   # the host's PATH etc., so tools resolve
    env.update({e["name"]: mapped(str(e.get("value", ""))) for e in container.get("env", []) if "name" in e})
    env.update(spec.get("env", {}))
    cwd = spec.get("cwd") or (mapped(container["workingDir"]) if container.get("workingDir") else None)
    if cwd and not spec.get("cwd") and any(cwd == f or cwd.startswith(f + "/") for f in rt.volumes.values()):
        os.makedirs(cwd, exist_ok=True)   # the runtime makes a missing workingDir (here only inside a volume)
    try:
        # A session of its own, so that stopping the pod kills the whole process tree.
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except (OSError, IndexError) as e:
        rt.append(f"fake-apiserver: cannot start {argv!r}: {e}\n".encode(), name)
        return 128
    with LOCK:
        rt.proc = proc
        if rt.stop.is_set():
            stop_pod(rt)

    def copy_output():
        while chunk := proc.stdout.read1(65536):
            rt.append(chunk, name)
    reader = threading.Thread(target=copy_output, daemon=True)
    reader.start()
    code = proc.wait()
    try:   # as in a container, what the main process leaves behind dies with it (and so the log ends)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    reader.join()
    return code if code >= 0 else 128 - code   # killed by signal N -> exit code 128+N, as a container reports

def signal_group(proc, sig):
    try:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass

def stop_pod(rt):
    rt.stop.set()
    if rt.proc:
        # SIGTERM like the kubelet, SIGKILL after a grace period shortened from 30s to 2s.
        signal_group(rt.proc, signal.SIGTERM)
        timer = threading.Timer(2.0, signal_group, (rt.proc, signal.SIGKILL))
        timer.daemon = True
        timer.start()

def pods_of(job):
    return [k for k, p in PODS.items() if p["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]]

def deadline_exceeded(job):
    with LOCK:
        if job_alive(job):
            set_job_status(job, conditions=job["status"].get("conditions", []) + [
                condition("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline")])
            for key in pods_of(job):
                if not RUNTIME[key].done:
                    stop_pod(RUNTIME[key])

def delete(store, plural, group, ns, name):
    with LOCK:
        obj = store.pop((ns, name), None)
        if obj is None:
            raise not_found(plural, group, name)
        touch(obj, "DELETED")
        # Pods of a deleted Job go too (the garbage collector's background propagation). A deleted
        # pod of a live Job counts as failed and is replaced, within backoffLimit.
        for key in pods_of(obj) if plural == "jobs" else [(ns, name)]:
            stop_pod(RUNTIME[key])
            if key in PODS:
                touch(PODS.pop(key), "DELETED")
            if RUNTIME[key].done:   # else its volumes go once its processes have exited (run_pod)
                remove_volumes(RUNTIME[key])
        return obj

# ---------------------------------------------------------------- HTTP

ROUTES = [("pods", "", PODS, "Pod", re.compile(r"^/api/v1/(?:namespaces/([^/]+)/)?pods(?:/([^/]+)(?:/(log))?)?$")),
          ("jobs", "batch", JOBS, "Job", re.compile(r"^/apis/batch/v1/(?:namespaces/([^/]+)/)?jobs(?:/([^/]+))?()$"))]

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, and chunked responses for log and watch streams

    def log_message(self, *args):
        if ARGS.verbose:
            super().log_message(*args)

    def do_request(self):
        url = urlsplit(self.path)
        query = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        # kubectl sends no credentials over plain http, so contexts are told apart by a path prefix.
        m = re.match(r"^/ctx/([^/]+)(/.*)$", url.path)
        context, path = (m.group(1), m.group(2)) if m else ("fake", url.path)
        record = {"time": time.time(), "context": context, "method": self.command, "path": path, "query": query,
                  "accept": self.headers.get("Accept"), **({"body": body} if body is not None else {})}
        with LOCK, open(ARGS.record, "a") as f:
            f.write(json.dumps(record) + "\n")
        try:
            if self.command == "GET" and path in DISCOVERY:
                return self.send_json(200, DISCOVERY[path])
            if self.command == "GET" and path.startswith("/openapi/v3"):
                return self.send_json(200, openapi_v3(path, "" if context == "fake" else f"/ctx/{context}"))
            if self.command == "GET" and (m := re.match(r"^/api/v1/namespaces(?:/([^/]+))?$", path)):
                return self.send_json(200, namespaces(m.group(1)))
            for plural, group, store, kind, pattern in ROUTES:
                if m := pattern.match(path):
                    return self.resource(plural, group, store, kind, *m.groups(), query, body)
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        except ApiError as e:
            self.send_json(e.status["code"], e.status)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_request

    def resource(self, plural, group, store, kind, ns, name, sub, query, body):
        if self.command == "GET" and name is None and query.get("watch") in ("true", "1"):
            return self.watch(store, kind, matcher(ns, query), query)
        if self.command == "GET" and name is None:
            with LOCK:
                items = [copy.deepcopy(o) for _, o in sorted(store.items()) if matcher(ns, query)(o)]
            for item in items:   # items of a real list carry no apiVersion/kind
                del item["apiVersion"], item["kind"]
            return self.send_json(200, {"apiVersion": "batch/v1" if group else "v1", "kind": kind + "List",
                                        "metadata": {"resourceVersion": str(STATE["rv"])}, "items": items})
        if ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if self.command == "POST" and name is None and plural == "jobs":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
            if not namespace_exists(ns):   # a real server checks the namespace on create only
                raise not_found("namespaces", "", ns)
            return self.send_json(201, create_job(ns, body, "dryRun" in query))
        if self.command == "GET" and sub == "log":
            return self.stream_log(ns, name, query)
        if self.command == "GET" and not sub:
            with LOCK:
                if (ns, name) not in store:
                    raise not_found(plural, group, name)
                return self.send_json(200, copy.deepcopy(store[(ns, name)]))
        if self.command == "DELETE" and name and not sub:
            return self.send_json(200, delete(store, plural, group, ns, name))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def stream_log(self, ns, name, query):
        with LOCK:
            pod, rt = PODS.get((ns, name)), RUNTIME.get((ns, name))
            if pod is None:
                raise not_found("pods", "", name)
            container = query.get("container") or rt.main
            if container not in rt.logs:   # a main or an init container of the pod
                raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
            if container not in rt.started:   # what the kubelet answers before the container starts
                statuses = pod["status"].get("initContainerStatuses", []) + pod["status"]["containerStatuses"]
                waiting = next(cs["state"] for cs in statuses if cs["name"] == container).get("waiting") or {}
                raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: '
                               + waiting.get("reason", "ContainerCreating"))
            log = rt.logs[container]
            sent, first = len(log), bytes(log)
        if "tailLines" in query:
            first = b"".join(first.splitlines(keepends=True)[::-1][:int(query["tailLines"])][::-1])
        ended = lambda: rt.done or container in rt.ended   # main containers end with the pod
        self.start_stream("text/plain")
        self.send_chunk(first)
        while query.get("follow") in ("true", "1") and not self.client_gone():
            with LOCK:
                CHANGED.wait_for(lambda: len(log) > sent or ended(), timeout=1.0)
                data, done = bytes(log[sent:]), ended()
            sent += len(data)
            if not self.send_chunk(data) or done:
                break
        self.end_stream()

    def watch(self, store, kind, match, query):
        with LOCK:
            since = int(query.get("resourceVersion") or 0)
            backlog = []
            if since == 0:   # "from now": the current objects come first, as synthetic ADDED events
                backlog, since = [("ADDED", copy.deepcopy(o)) for _, o in sorted(store.items()) if match(o)], STATE["rv"]
        deadline = time.time() + float(query.get("timeoutSeconds") or 1800)
        self.start_stream("application/json")
        while time.time() < deadline and not self.client_gone():
            events = "".join(json.dumps({"type": t, "object": o}) + "\n" for t, o in backlog).encode()
            if not self.send_chunk(events):
                break
            with LOCK:
                CHANGED.wait_for(lambda: STATE["rv"] > since, timeout=1.0)
                backlog = [(t, o) for rv, t, o in EVENTS if rv > since and o["kind"] == kind and match(o)]
                since = STATE["rv"]
        self.end_stream()

    def client_gone(self):
        readable, _, _ = select.select([self.connection], [], [], 0)
        return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""

    def start_stream(self, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_chunk(self, data):
        try:
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            return True
        except OSError:
            self.close_connection = True
            return False

    def end_stream(self):
        if not self.close_connection:
            try:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                self.close_connection = True

    def send_json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

def kubeconfig(port):
    # Both contexts reach this server; "other" through a /ctx/other prefix, so the record tells them apart.
    # "other" is also the current context, so a forgotten --context shows up in the record.
    server = f"http://127.0.0.1:{port}"
    return {"apiVersion": "v1", "kind": "Config", "current-context": "other", "preferences": {},
            "clusters": [{"name": "fake", "cluster": {"server": server}},
                         {"name": "other", "cluster": {"server": server + "/ctx/other"}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": ARGS.namespace}},
                         {"name": "other", "context": {"cluster": "other", "user": "fake"}}]}

def write_atomically(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)

def shutdown(*_):
    with LOCK:
        for rt in RUNTIME.values():
            if rt.proc:
                signal_group(rt.proc, signal.SIGKILL)
                rt.proc.wait(1)   # reaped here rather than left as zombies for whoever adopts them
        for rt in RUNTIME.values():
            remove_volumes(rt)
    os._exit(0)

def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", help="written once the server listens (after the kubeconfig)")
    p.add_argument("--script", required=True, help="JSON rules deciding what each Job does")
    p.add_argument("--record", default=os.devnull, help="JSONL file: one line per request")
    p.add_argument("--kubeconfig", help="kubeconfig to write, with contexts 'fake' and 'other'")
    p.add_argument("--namespace", default="default", help="namespace of the 'fake' context")
    p.add_argument("--namespaces", help="comma-separated namespaces that exist (default: any)")
    p.add_argument("--max-seconds", type=float, default=900, help="exit after this long, killing pod processes")
    p.add_argument("--verbose", action="store_true")
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    if ARGS.kubeconfig:
        write_atomically(ARGS.kubeconfig, json.dumps(kubeconfig(server.server_address[1]), indent=2))
    if ARGS.port_file:
        write_atomically(ARGS.port_file, str(server.server_address[1]))
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    timer = threading.Timer(ARGS.max_seconds, shutdown)
    timer.daemon = True
    timer.start()
    server.serve_forever()

if __name__ == "__main__":
    main()
