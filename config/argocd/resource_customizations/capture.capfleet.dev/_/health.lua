-- Argo CD health of every capfleet kind (CaptureSensor, ReplayJob, PacketPipeline, FlowCollector; "_" is Argo CD's wildcard
-- for the kind), from the kstatus conditions the operator writes.
-- Stalled=True: the spec cannot work as written (Degraded). Reconciling=True or a status older than the
-- spec: the operator is still at work (Progressing). Ready=True: Healthy. Ready=False with reason Degraded:
-- running, but doing its job badly (drops over the threshold, a processor retrying a failure).
local hs = { status = "Progressing", message = "Waiting for the operator to report" }
if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < generation) then
  hs.message = "The operator has not observed generation " .. generation .. " yet"
  return hs
end
local function condition(kind)
  if obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end
local stalled, reconciling, ready = condition("Stalled"), condition("Reconciling"), condition("Ready")
if stalled ~= nil and stalled.status == "True" then
  hs.status, hs.message = "Degraded", stalled.message
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.message = reconciling.message
elseif ready ~= nil and ready.status == "True" then
  hs.status, hs.message = "Healthy", ready.message
elseif ready ~= nil and ready.reason == "Degraded" then
  hs.status, hs.message = "Degraded", ready.message
elseif ready ~= nil then
  hs.message = ready.message
end
return hs
