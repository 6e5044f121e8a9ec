// Addresses inside the app; a share token rides along so a shared link keeps working as people move around.

export const DOC_NAME = /^[A-Za-z0-9._-]{1,128}$/

export function withToken (path, token) {
  return token ? `${path}?token=${encodeURIComponent(token)}` : path
}

export const docPath = (name, token) => withToken(`/d/${name}`, token)
