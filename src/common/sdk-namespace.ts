const namespaces = new Map<string, string>();

/**
 * Names the SDK namespace of a controller's operations: `@SdkNamespace('llm.budgets')` on a
 * controller makes its `setApiKey` method the operationId `llm.budgets.setApiKey`, as MKA1's SDK
 * calls it (`sdk.llm.budgets.setApiKey`).
 */
export function SdkNamespace(namespace: string): ClassDecorator {
  return (target) => {
    namespaces.set(target.name, namespace);
  };
}

export function operationId(controllerKey: string, methodKey: string): string {
  const namespace = namespaces.get(controllerKey);
  if (!namespace) throw new Error(`${controllerKey} has no @SdkNamespace(): its operationIds would not be unique`);
  return `${namespace}.${methodKey}`;
}
