/**
 * Field numbers of the onnx.proto messages Scalpel reads and writes at the wire level (model.ts
 * reads them, build.ts, rewrite.ts and write.ts write them), named as in onnx/onnx.proto.
 */
export const ModelProto = { irVersion: 1, producerName: 2, graph: 7, opsetImport: 8 } as const;
export const OperatorSetIdProto = { domain: 1, version: 2 } as const;
export const GraphProto = { node: 1, name: 2, initializer: 5, input: 11, output: 12, valueInfo: 13 } as const;
export const NodeProto = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
export const AttributeProto = { name: 1, f: 2, i: 3, s: 4, ints: 8, type: 20 } as const;
/** AttributeProto.type values. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;
export const TensorProto = {
  dims: 1, dataType: 2, floatData: 4, int32Data: 5, int64Data: 7, name: 8, rawData: 9, doubleData: 10, externalData: 13, dataLocation: 14,
} as const;
/** TensorProto.data_location values. */
export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;
export const StringStringEntryProto = { key: 1, value: 2 } as const;
export const ValueInfoProto = { name: 1, type: 2 } as const;
export const TypeProto = { tensorType: 1 } as const;
export const TypeProtoTensor = { elemType: 1, shape: 2 } as const;
export const TensorShapeProto = { dim: 1 } as const;
export const TensorShapeDimension = { dimValue: 1, dimParam: 2 } as const;
