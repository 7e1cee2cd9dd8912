// The generated wire contract. openshell.v1 is exported flat (it is what most code uses); the other
// packages are namespaced because several message names repeat across them.
export * as compute from "./gen/openshell/compute/v1/compute_driver_pb.js";
export * as datamodel from "./gen/openshell/datamodel/v1/datamodel_pb.js";
export * as sandboxv1 from "./gen/openshell/sandbox/v1/sandbox_pb.js";
export * from "./gen/openshell/v1/openshell_pb.js";
