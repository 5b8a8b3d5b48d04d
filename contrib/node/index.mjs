// SPDX-License-Identifier: MIT
// The ES module entry point: the same classes as the CommonJS one (index.cjs).
import securelink from './index.cjs';

export const { Client, SecurelinkError, DEFAULT_SOCKET, LINE_MAX, GRANT_COOKIE } = securelink;
export default securelink;
