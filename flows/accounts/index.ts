// The account flows (admins, customers, API clients), in registry order.
import { adminCreate, adminCreateAdmin } from './admin-create.js'
import { adminList } from './admin-list.js'
import { adminLogin } from './admin-login.js'
import { authToken } from './auth-token.js'
import { customerLogin } from './customer-login.js'
import { customerMe } from './customer-me.js'
import { customerRegister } from './customer-register.js'

export const accountFlows = [adminLogin, adminList, adminCreate, adminCreateAdmin, customerRegister, customerLogin, customerMe, authToken] as const
