import { createContext, useContext } from "react";
import type { ModelInfo } from "../api/types";

/** The served model's description for the pages below it (tests provide their own). */
export const InfoContext = createContext<ModelInfo | null>(null);

/** The served model's description (loaded once, before any page renders). */
export function useInfo(): ModelInfo {
  const info = useContext(InfoContext);
  if (!info) throw new Error("model info is not loaded");
  return info;
}
