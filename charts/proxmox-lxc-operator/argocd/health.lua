-- Argo CD health check for the pve.lxc.dev kinds (ProxmoxCluster, LxcContainer, LxcTemplate,
-- LxcBackupSchedule, LxcBackup, LxcSnapshot, LxcSnapshotSchedule). Argo CD runs it with the live object in `obj` and reads the
-- returned table: status Healthy | Progressing | Degraded | Suspended, and a message.
-- Test cases: health_test.yaml and testdata/ next to this file.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }

-- Ready=False reasons that need a person (or a change of spec): shown as Degraded.
local degraded = {
  InvalidSpec = true, Failed = true, AuthenticationFailed = true, PermissionDenied = true,
  Unauthorized = true, Forbidden = true, TaskFailed = true, CredentialsNotFound = true,
  SecretNotFound = true, TLSError = true, CertificateMismatch = true, NotOwned = true,
  Conflict = true, ShrinkRefused = true, InUse = true, QuotaExceeded = true,
}
-- Ready=False reasons that the operator is working through: shown as Progressing.
local progressing = {
  Pending = true, Creating = true, Cloning = true, Restoring = true, Starting = true,
  Stopping = true, Updating = true, Resizing = true, Deleting = true, Downloading = true,
  Building = true, Queued = true, Running = true, TaskRunning = true, Reconciling = true,
  WaitingForTemplate = true, WaitingForCluster = true, WaitingForBackup = true,
  WaitingForNode = true, ClusterNotReady = true, Connecting = true,
}

local function condition(conds, type_)
  if conds == nil then return nil end
  for _, c in ipairs(conds) do
    if c.type == type_ then return c end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then return fallback end
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then return reason .. ": " .. message end
  if message ~= "" then return message end
  if reason ~= "" then return reason end
  return fallback
end

local function ends_with(s, suffix)
  return suffix == "" or string.sub(s, -string.len(suffix)) == suffix
end

local spec = obj.spec or {}
local status = obj.status
local generation = obj.metadata and obj.metadata.generation or nil

if (obj.kind == "LxcBackupSchedule" or obj.kind == "LxcSnapshotSchedule") and spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Schedule is suspended (spec.suspend)"
  return hs
end

if status == nil then
  return hs
end

local ready = condition(status.conditions, "Ready")

-- One backup: its phase is final.
if obj.kind == "LxcBackup" then
  if status.phase == "Completed" then
    hs.status = "Healthy"
    hs.message = "Backup completed" .. (status.volid and (": " .. status.volid) or "")
    return hs
  elseif status.phase == "Failed" then
    hs.status = "Degraded"
    hs.message = describe(ready, "Backup failed")
    return hs
  end
  hs.status = "Progressing"
  hs.message = "Backup " .. string.lower(status.phase or "pending")
  return hs
end

-- The status speaks about an older spec: wait for the operator.
local observed = (ready and ready.observedGeneration) or status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

-- kstatus-style conditions, when present, win.
local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(ready, "Failed")
  return hs
end

if ready ~= nil and ready.status == "False" then
  local reason = ready.reason or ""
  if degraded[reason] or (not progressing[reason] and (ends_with(reason, "Failed")
      or string.sub(reason, 1, 7) == "Invalid" or ends_with(reason, "Error")
      or string.sub(reason, 1, 12) == "TenantPolicy" or ends_with(reason, "NotOwned"))) then
    hs.status = "Degraded"
  else
    hs.status = "Progressing"
  end
  hs.message = describe(ready, "Not ready")
  return hs
end

if ready ~= nil then
  hs.message = describe(ready, "Ready is Unknown")
end
return hs
